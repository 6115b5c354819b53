package cli

import (
	"net"
	"net/netip"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

func (a *App) serveCmd() *cobra.Command {
	var opts ServeOptions
	var insecure bool
	c := &cobra.Command{
		Use:   "serve",
		Short: "Serve the HTTP API (OpenAPI at /openapi.json) until interrupted",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkListen(opts.Listen, insecure); err != nil {
				return err
			}
			return a.Serve(cmd.Context(), a.cfg, a.Logger(), opts)
		},
	}
	c.Flags().StringVar(&opts.Listen, "listen", "127.0.0.1:8080", "address to listen on (loopback unless --insecure-listen)")
	c.Flags().BoolVar(&insecure, "insecure-listen", false, "allow a non-loopback address without TLS and authentication (not for production)")
	return c
}

// checkListen refuses non-loopback addresses: the API has no TLS or
// authentication yet, so anything that could reach it could change the
// registry.
func checkListen(addr string, insecure bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return kiln.FieldErrorf(kiln.EINVALID, "--listen", "%q is not HOST:PORT: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if err == nil && ip.IsLoopback() {
		return nil
	}
	if insecure {
		return nil
	}
	return kiln.FieldErrorf(kiln.EINVALID, "--listen", "%s is not a loopback address; kiln's API has no TLS or authentication yet, so it only listens on 127.0.0.1 or ::1 (use --insecure-listen to override on a trusted network)", addr)
}
