package piece

import (
	"reflect"
	"testing"
)

func TestAnnounceTiers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		list     [][]string
		announce string
		extra    []string
		want     [][]string
	}{
		{"announce alone", nil, "http://a", nil, [][]string{{"http://a"}}},
		{"nothing", nil, "", nil, nil},
		{"list wins over announce", [][]string{{"http://b", "http://c"}, {"http://d"}}, "http://a", nil,
			[][]string{{"http://b", "http://c"}, {"http://d"}}},
		{"empty URLs, repeats and emptied tiers dropped", [][]string{{"http://b", "", "http://b"}, {}, {"http://b"}, {"http://c", "http://b"}}, "", nil,
			[][]string{{"http://b"}, {"http://c"}}},
		{"a list of nothing falls back to announce", [][]string{{""}}, "http://a", nil, [][]string{{"http://a"}}},
		{"extra trackers: a tier each, after, without repeats", [][]string{{"http://b"}}, "", []string{"http://x", "http://b", "", "http://x", "http://y"},
			[][]string{{"http://b"}, {"http://x"}, {"http://y"}}},
		{"extra alone", nil, "", []string{"http://x"}, [][]string{{"http://x"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := AnnounceTiers(tc.list, tc.announce, tc.extra...); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			m := &MetaInfo{AnnounceList: tc.list, Announce: tc.announce}
			if got := m.Tiers(tc.extra...); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Tiers: got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTrackersListsAnnounceToo(t *testing.T) {
	// A magnet link or a listing names every tracker, announce included
	// even when announce-list leaves it out.
	m := &MetaInfo{AnnounceList: [][]string{{"http://b", "http://c"}, {"http://b"}}, Announce: "http://a"}
	if got, want := m.Trackers(), []string{"http://b", "http://c", "http://a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
	m = &MetaInfo{AnnounceList: [][]string{{"http://a"}}, Announce: "http://a"}
	if got, want := m.Trackers(), []string{"http://a"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
