package dispatch

// maxLoggedBody is how much of a request body and of an answer the access
// log keeps, when logging.bodies is on.
const maxLoggedBody = 4 << 10

// loggedBodies holds the start of a call's request body and of its answer
// for the access log. It exists only when logging.bodies is on: prompts
// and completions are never kept otherwise.
type loggedBodies struct {
	request, answer []byte
	next            Tap // the answer's own tap, fed as before
}

// Write keeps the start of the answer and passes p on.
func (l *loggedBodies) Write(p []byte) {
	if n := maxLoggedBody - len(l.answer); n > 0 {
		l.answer = append(l.answer, p[:min(n, len(p))]...)
	}
	l.next.Write(p)
}

// keepRequest copies the start of the call's body, when bodies are logged.
func (c *Core) keepRequest(call *Call) {
	if !c.bodies || call.st.logged != nil {
		return
	}
	b := call.Body
	call.st.logged = &loggedBodies{request: append([]byte(nil), b[:min(len(b), maxLoggedBody)]...)}
}
