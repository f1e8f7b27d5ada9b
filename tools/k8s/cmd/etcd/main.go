// Command etcd is upstream's server/main.go. `go install go.etcd.io/etcd/server/v3`
// fails because server/go.mod replaces its sibling modules with local paths.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
