package kiln

import (
	"context"
)

type actorKey struct{}

// WithActor returns a context carrying who is acting: a token name, a local
// user, a kiln worker. History and audit entries record it.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the actor carried by ctx, or "unknown".
func ActorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "unknown"
}

type sourceKey struct{}

// WithSource returns a context carrying the client address an action came
// from; audit entries record it.
func WithSource(ctx context.Context, addr string) context.Context {
	return context.WithValue(ctx, sourceKey{}, addr)
}

// SourceFrom returns the address carried by ctx, or "local".
func SourceFrom(ctx context.Context) string {
	if a, ok := ctx.Value(sourceKey{}).(string); ok && a != "" {
		return a
	}
	return "local"
}
