package jsonscan

// ObjectEach calls fn for each member of the object in data with its decoded
// key, its raw value and the value's offset in data, then checks that nothing
// but whitespace follows the object. The whole input is validated.
func ObjectEach(data []byte, fn func(key, value []byte, valueOffset int) error) error {
	d := NewDecoder(data)
	err := d.Object(func(key []byte) error {
		start := d.Offset()
		v, err := d.Skip()
		if err != nil {
			return err
		}
		return fn(key, v, start)
	})
	if err != nil {
		return err
	}
	return d.End()
}
