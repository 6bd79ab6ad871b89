package metric

import (
	"strings"
	"testing"
)

func TestRegistry(t *testing.T) {
	r := NewRegistry[func() int]("widget")
	r.Register("b", "the b widget", func() int { return 2 })
	r.Register("a", "the a widget", func() int { return 1 })

	if got := strings.Join(r.Names(), ","); got != "a,b" {
		t.Fatalf("Names() = %s, want a,b", got)
	}
	f, err := r.Lookup("b")
	if err != nil || f() != 2 {
		t.Fatalf("Lookup(b) failed: %v", err)
	}
	if r.Description("a") != "the a widget" {
		t.Fatalf("Description(a) = %q", r.Description("a"))
	}
	_, err = r.Lookup("c")
	if err == nil || err.Error() != `unknown widget "c" (known: a, b)` {
		t.Fatalf("Lookup(c) error = %v", err)
	}

	for name, reg := range map[string]func(){
		"empty name":  func() { r.Register("", "", func() int { return 0 }) },
		"nil factory": func() { r.Register("n", "", nil) },
		"duplicate":   func() { r.Register("a", "", func() int { return 0 }) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("Register did not panic")
				}
			}()
			reg()
		})
	}
}
