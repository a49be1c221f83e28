package termsafe

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestString(t *testing.T) {
	for in, want := range map[string]string{
		"plain name.iso":          "plain name.iso",
		"ünïcode/名前.txt":          "ünïcode/名前.txt",
		"family 👨\u200d👩\u200d👧":  "family 👨\u200d👩\u200d👧",
		"\x1b[31mred\x1b[0m":      `\x1b[31mred\x1b[0m`,
		"a\nforged line":          `a\nforged line`,
		"cr\rtab\tnul\x00del\x7f": `cr\rtab\tnul\x00del\x7f`,
		"c1 \u009b31m csi":        `c1 \u009b31m csi`,
		"bidi \u202egnp.exe":      `bidi \u202egnp.exe`,
		"sep\u2028line":           `sep\u2028line`,
		"bad \xff\xfe utf8":       `bad \xff\xfe utf8`,
		"tag \U000E0041":          `tag \U000e0041`,
		"back\\slash":             `back\slash`,
		"":                        "",
	} {
		got := String(in)
		if got != want {
			t.Errorf("String(%q) = %q, want %q", in, got, want)
		}
		for _, c := range got {
			if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == '\u202e' || c == '\u2028' {
				t.Errorf("String(%q) kept %U", in, c)
			}
		}
	}
}

func TestStringNoAllocWhenSafe(t *testing.T) {
	s := "an ordinary name – with ünïcode"
	if n := testing.AllocsPerRun(100, func() { String(s) }); n != 0 {
		t.Fatalf("%v allocations for a safe string", n)
	}
}

func TestJSON(t *testing.T) {
	name := "x\x1b[31m\nforged\u009b\x7f\u202e \U000E0041 ok ü"
	data, err := json.Marshal(map[string]string{"name": name})
	if err != nil {
		t.Fatal(err)
	}
	out := JSON(data)
	for _, c := range string(out) {
		if c < 0x20 || c == 0x7f || (c >= 0x80 && c < 0xa0) || c == '\u202e' || c == '\U000E0041' {
			t.Errorf("JSON kept %U: %s", c, out)
		}
	}
	var back map[string]string
	if err := json.Unmarshal(out, &back); err != nil || back["name"] != name {
		t.Fatalf("JSON changed the document: %q %v", back["name"], err)
	}
	if !strings.Contains(string(out), "ok ü") {
		t.Fatalf("JSON escaped a safe rune: %s", out)
	}
	safe := []byte(`{"a": "b"}`)
	if got := JSON(safe); &got[0] != &safe[0] {
		t.Fatal("JSON copied a document that needed nothing")
	}
}
