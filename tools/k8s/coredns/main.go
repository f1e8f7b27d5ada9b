// Command coredns is CoreDNS with only the plugins the real test node's cluster
// DNS needs: the kubernetes plugin answers <service>.<namespace>.svc.cluster.local
// and refuses every other name, so no pod query ever leaves the machine (there is
// no forward plugin to send it anywhere). Upstream's main is this plus every plugin.
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
