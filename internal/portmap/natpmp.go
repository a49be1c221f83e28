package portmap

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	natpmp "github.com/jackpal/go-nat-pmp"
)

// natPMP is a gateway that answers NAT-PMP (RFC 6886).
type natPMP struct {
	gw netip.Addr
}

// probeNATPMP asks gw for its external address, which tells whether it
// speaks NAT-PMP.
func probeNATPMP(ctx context.Context, gw netip.Addr) (router, error) {
	r := &natPMP{gw: gw}
	if _, err := r.externalIP(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *natPMP) String() string { return "NAT-PMP gateway " + r.gw.String() }

// client returns a client whose retries end by ctx's deadline: the
// library's calls take no context, only a timeout.
func (r *natPMP) client(ctx context.Context) *natpmp.Client {
	d := callTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = max(time.Until(dl), time.Millisecond)
	}
	return natpmp.NewClientWithTimeout(r.gw.AsSlice(), d)
}

func (r *natPMP) externalIP(ctx context.Context) (netip.Addr, error) {
	res, err := r.client(ctx).GetExternalAddress()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("external address: %w", err)
	}
	return netip.AddrFrom4(res.ExternalIPAddress), nil
}

func (r *natPMP) add(ctx context.Context, proto string, port uint16, lease time.Duration) (uint16, time.Duration, error) {
	res, err := r.client(ctx).AddPortMapping(strings.ToLower(proto), int(port), int(port), int(lease/time.Second))
	if err != nil {
		return 0, 0, describeNATPMP(err)
	}
	if res.InternalPort != port {
		return 0, 0, fmt.Errorf("router answered for internal port %d, not %d", res.InternalPort, port)
	}
	if res.PortMappingLifetimeInSeconds == 0 {
		return 0, 0, fmt.Errorf("router granted a lifetime of 0 for external port %d", res.MappedExternalPort)
	}
	return res.MappedExternalPort, time.Duration(res.PortMappingLifetimeInSeconds) * time.Second, nil
}

// remove asks for a lifetime of 0, which deletes the mapping (RFC 6886
// 3.4); the external port must then be 0.
func (r *natPMP) remove(ctx context.Context, proto string, port uint16) error {
	_, err := r.client(ctx).AddPortMapping(strings.ToLower(proto), int(port), 0, 0)
	return describeNATPMP(err)
}

// natpmpResults names the result codes of RFC 6886 3.5.
var natpmpResults = map[int]string{
	1: "unsupported version",
	2: "not authorized (mapping disabled on the router)",
	3: "network failure",
	4: "out of resources",
	5: "unsupported opcode",
}

// describeNATPMP names the result code in the library's error for a
// refusal, which says only its number.
func describeNATPMP(err error) error {
	if err == nil {
		return nil
	}
	var code int
	if _, e := fmt.Sscanf(err.Error(), "Non-zero result code %d", &code); e == nil {
		if name, ok := natpmpResults[code]; ok {
			return fmt.Errorf("router refused: NAT-PMP result %d, %s", code, name)
		}
		return fmt.Errorf("router refused: NAT-PMP result %d", code)
	}
	return err
}
