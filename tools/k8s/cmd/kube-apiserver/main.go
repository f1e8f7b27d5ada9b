// Command kube-apiserver is upstream's cmd/kube-apiserver main, built from the
// module proxy through this wrapper module (k8s.io/kubernetes cannot be
// `go install`ed: its go.mod replaces the staging modules with local paths).
package main

import (
	"os"
	_ "time/tzdata" // CronJob time zones

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
