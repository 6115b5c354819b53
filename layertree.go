package kiln

import "context"

// LayerTrees finds a layered artifact's layers already unpacked on this
// machine, so that a platform takes them instead of unpacking the blobs
// from the artifact store again: the build's step cache keeps the tree of
// every layer it made (build.Trees), and the test stage launches the
// version the build has just made.
//
// A tree handed out is a lead, not a proof: the caller checks it against
// the layer's diff ID (the tree written in the layer format must hash to
// it) before it trusts it, and unpacks the blob when it does not.
type LayerTrees interface {
	// LayerTrees returns, for each of layers (a's, bottom first, as read
	// from the artifact store and checked against a.Digest), the
	// directory holding that layer as an overlay lower directory
	// (whiteouts as overlay whiteouts), or "" where none is kept. The
	// directories are held against pruning until release is called;
	// release is never nil, and the caller copies what it keeps (hard
	// links) before it calls it.
	LayerTrees(ctx context.Context, a Artifact, layers []Layer) (dirs []string, release func(), err error)
}
