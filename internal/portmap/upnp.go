package portmap

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/httpu"
	"github.com/huin/goupnp/soap"
	"github.com/huin/goupnp/ssdp"
)

// igdClient is the part of a WANIPConnection or WANPPPConnection service
// that mapping needs; goupnp's clients of all three have it.
type igdClient interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string, internalPort uint16, internalClient string, enabled bool, description string, leaseSeconds uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
}

// upnpIGD is an Internet Gateway Device found by SSDP.
type upnpIGD struct {
	c    igdClient
	from netip.Addr // our address on the router's link: the internal client
	loc  *url.URL
	desc string
}

// igdTargets are the SSDP search targets: some routers answer only the
// exact version asked for.
var igdTargets = []string{
	"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
	"urn:schemas-upnp-org:device:InternetGatewayDevice:2",
}

// searchUPnP multicasts SSDP searches from l's address only, which on
// Linux also makes them leave by l's interface alone (the kernel sends a
// multicast from a bound source out of the device that owns it), and
// returns the first gateway on l's subnet that describes an IGD
// connection service. The search takes all but a second of ctx's time,
// left for fetching the description.
func searchUPnP(ctx context.Context, l local) (router, error) {
	window := 2 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		window = max(time.Until(dl)-time.Second, time.Second)
	}
	sctx, cancel := context.WithTimeout(ctx, window)
	defer cancel()
	type result struct {
		locs []*url.URL
		err  error
	}
	results := make(chan result, len(igdTargets))
	for _, st := range igdTargets {
		go func() {
			c, err := httpu.NewHTTPUClientAddr(l.addr.String())
			if err != nil {
				results <- result{err: fmt.Errorf("ssdp from %v: %w", l.addr, err)}
				return
			}
			defer c.Close()
			resps, err := ssdp.RawSearch(sctx, c, st, 2)
			var locs []*url.URL
			for _, resp := range resps {
				if loc, err := resp.Location(); err == nil {
					locs = append(locs, loc)
				}
			}
			results <- result{locs, err}
		}()
	}
	var locs []*url.URL
	var errs []error
	seen := map[string]bool{}
	for range igdTargets {
		r := <-results
		errs = append(errs, r.err)
		for _, loc := range r.locs {
			if !seen[loc.String()] {
				seen[loc.String()] = true
				locs = append(locs, loc)
			}
		}
	}
	for _, loc := range locs {
		r, err := upnpAt(ctx, l, loc)
		if err == nil {
			return r, nil
		}
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return nil, errNoRouter
}

// upnpAt reads the device description at loc and returns its first
// connection service. A location off l's subnet is refused: a router is
// on our link, and following an answer elsewhere would leave the
// listener's scope.
func upnpAt(ctx context.Context, l local, loc *url.URL) (router, error) {
	host, err := netip.ParseAddr(loc.Hostname())
	if err != nil || !l.prefix.Contains(host.Unmap()) {
		return nil, fmt.Errorf("upnp: location %q is not on %v", loc, l.prefix)
	}
	root, err := goupnp.DeviceByURLCtx(ctx, loc)
	if err != nil {
		return nil, fmt.Errorf("upnp: %s: %w", loc, err)
	}
	var c igdClient
	var sc *goupnp.ServiceClient
	if cs, err := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		c, sc = cs[0], &cs[0].ServiceClient
	} else if cs, err := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		c, sc = cs[0], &cs[0].ServiceClient
	} else if cs, err := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, loc); err == nil && len(cs) > 0 {
		c, sc = cs[0], &cs[0].ServiceClient
	} else {
		return nil, fmt.Errorf("upnp: %s describes no WANIPConnection or WANPPPConnection service", loc)
	}
	// The description may put the control URL on any host (URLBase, an
	// absolute controlURL): it too must be on our link.
	ctl := sc.SOAPClient.EndpointURL
	if host, err := netip.ParseAddr(ctl.Hostname()); err != nil || !l.prefix.Contains(host.Unmap()) {
		return nil, fmt.Errorf("upnp: %s: control URL %q is not on %v", loc, ctl.String(), l.prefix)
	}
	return &upnpIGD{c: c, from: l.addr, loc: loc, desc: "shoal"}, nil
}

func (r *upnpIGD) String() string { return "UPnP IGD " + r.loc.Host }

func (r *upnpIGD) externalIP(ctx context.Context) (netip.Addr, error) {
	s, err := r.c.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("external address: %w", err)
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("external address %q: %w", s, err)
	}
	return ip.Unmap(), nil
}

// upnpOnlyPermanent is the IGD error of a router that takes no lease
// duration but 0 (UPnP IGD WANIPConnection:1, error 725).
const upnpOnlyPermanent = 725

func (r *upnpIGD) add(ctx context.Context, proto string, port uint16, lease time.Duration) (uint16, time.Duration, error) {
	secs := uint32(lease / time.Second)
	err := r.c.AddPortMappingCtx(ctx, "", port, proto, port, r.from.String(), true, r.desc, secs)
	var fault *soap.SOAPFaultError
	if errors.As(err, &fault) && fault.Detail.UPnPError.Errorcode == upnpOnlyPermanent {
		// Renewed all the same, and removed on exit.
		secs = 0
		err = r.c.AddPortMappingCtx(ctx, "", port, proto, port, r.from.String(), true, r.desc, 0)
	}
	if err != nil {
		return 0, 0, describeSOAP(err)
	}
	return port, time.Duration(secs) * time.Second, nil
}

func (r *upnpIGD) remove(ctx context.Context, proto string, port uint16) error {
	return describeSOAP(r.c.DeletePortMappingCtx(ctx, "", port, proto))
}

// describeSOAP shortens a SOAP fault to its UPnP error, which says what
// went wrong (718: the port is mapped to another host).
func describeSOAP(err error) error {
	var fault *soap.SOAPFaultError
	if errors.As(err, &fault) && fault.Detail.UPnPError.Errorcode != 0 {
		return fmt.Errorf("router refused: UPnP error %d %s", fault.Detail.UPnPError.Errorcode, fault.Detail.UPnPError.ErrorDescription)
	}
	return err
}
