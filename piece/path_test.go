package piece

import "testing"

// Every component that could leave the download folder, or that means
// another layout on another system, is refused; ordinary names, however
// odd, are not.
func TestCheckPathComponent(t *testing.T) {
	for _, c := range []string{"", ".", "..", "a/b", "/", `a\b`, `\`, "a\x00b"} {
		if CheckPathComponent(c) == nil {
			t.Errorf("%q accepted", c)
		}
	}
	for _, c := range []string{"a", "...", ".hidden", "read me.txt", "ü", "a..b", "-", "con"} {
		if err := CheckPathComponent(c); err != nil {
			t.Errorf("%q refused: %v", c, err)
		}
	}
}
