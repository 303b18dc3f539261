//go:build !unix

package loadtest

// raiseNoFile: no descriptor limit to raise here; 0 means unknown.
func raiseNoFile() uint64 { return 0 }
