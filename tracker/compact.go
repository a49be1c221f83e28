package tracker

import "strconv"

// appendCompact appends r bencoded exactly as the reflecting encoder
// writes it (keys sorted, peers6 left out when empty), without its
// allocations: handing r to it as an interface moved it to the heap on
// every announce, and that garbage paced collections that grew the heap
// and each connection's stack during load.
func appendCompact(b []byte, r *compactResponse) []byte {
	b = append(b, "d8:completei"...)
	b = strconv.AppendInt(b, int64(r.Complete), 10)
	b = append(b, "e10:downloadedi"...)
	b = strconv.AppendInt(b, int64(r.Downloaded), 10)
	b = append(b, "e10:incompletei"...)
	b = strconv.AppendInt(b, int64(r.Incomplete), 10)
	b = append(b, "e8:intervali"...)
	b = strconv.AppendInt(b, r.Interval, 10)
	b = append(b, "e12:min intervali"...)
	b = strconv.AppendInt(b, r.MinInterval, 10)
	b = append(b, "e5:peers"...)
	b = strconv.AppendInt(b, int64(len(r.Peers)), 10)
	b = append(b, ':')
	b = append(b, r.Peers...)
	if len(r.Peers6) > 0 {
		b = append(b, "6:peers6"...)
		b = strconv.AppendInt(b, int64(len(r.Peers6)), 10)
		b = append(b, ':')
		b = append(b, r.Peers6...)
	}
	return append(b, 'e')
}
