// Package local is the Platform driver that runs instances on this machine:
// each instance is a systemd-nspawn container booting the image's own
// systemd, on an overlay whose lower layers are the version's artifact
// (or each of its layers) unpacked once into a read-only cache, in a network namespace kiln creates,
// reachable from the host only through loopback ports a supervisor process
// forwards into it.
//
// Layout under <DataDir>/local:
//
//	rootfs/<hex>               unpacked single-tar artifacts (overlay lower dirs; never written)
//	layers/<diff ID hex>       unpacked layers of layered artifacts, shared (never written)
//	instances/<id>/state.json  the instance's record, written by whoever holds the lock;
//	                           private to this package (others ask UpperDir, LowerDir)
//	instances/<id>/supervisor.lock  held by the supervisor for its whole life
//	instances/<id>/upper       the instance's changes (kept for drift detection)
//	instances/<id>/work, rootfs  overlay work dir and mount point
//	instances/<id>/console.log, supervisor.log
//
// Every instance has a supervisor (SupervisorMain, run by re-executing the
// kiln binary) that owns the systemd-nspawn process, the overlay mount, the
// network namespace and the port forwarders, so that the instance outlives
// the kiln command that launched it and its end is noticed.
//
// The package must not boot an artifact in place, write into the rootfs
// cache, touch network namespaces or mounts it did not create, or leave
// processes, mounts or namespaces behind after Destroy. It knows nothing of
// the registry: callers record instances themselves.
package local
