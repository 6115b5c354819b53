// Command client drives a kiln server with a client oapi-codegen generated
// from the server's /openapi-3.0.json (api/client_test.go builds it in a
// module of its own, next to the generated package kilnclient). It exits
// non-zero, saying which step failed, when the generated client cannot do
// what a user of it would.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"

	"kilnclienttest/kilnclient"
)

func main() {
	if err := run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "generated client:", err)
		os.Exit(1)
	}
	fmt.Println("generated client: ok")
}

// bearer sends token the way the document's security scheme says.
func bearer(token string) kilnclient.RequestEditorFn {
	return func(_ context.Context, r *http.Request) error {
		r.Header.Set("Authorization", "Bearer "+token)
		return nil
	}
}

func run(ctx context.Context) error {
	c, err := kilnclient.NewClientWithResponses(os.Getenv("KILN_URL"))
	if err != nil {
		return err
	}
	builder, viewer := bearer(os.Getenv("KILN_BUILDER")), bearer(os.Getenv("KILN_VIEWER"))

	desc := "nginx and the app on Debian 12"
	img, err := c.CreateImageWithResponse(ctx, kilnclient.CreateImageJSONRequestBody{Name: "appserver", Description: &desc}, builder)
	if err != nil {
		return fmt.Errorf("create image: %w", err)
	}
	if img.StatusCode() != http.StatusCreated || img.JSON201 == nil || img.JSON201.Name != "appserver" {
		return fmt.Errorf("create image: %s %s", img.Status(), img.Body)
	}

	semver := "1.0.4"
	ver, err := c.CreateVersionWithResponse(ctx, "appserver", kilnclient.CreateVersionJSONRequestBody{Semver: &semver}, builder)
	if err != nil {
		return fmt.Errorf("register a version: %w", err)
	}
	if ver.StatusCode() != http.StatusCreated || ver.JSON201 == nil || ver.JSON201.Number != 1 ||
		ver.JSON201.Status != "candidate" || !strings.HasPrefix(ver.JSON201.Name, "appserver-1") {
		return fmt.Errorf("register a version: %s %s", ver.Status(), ver.Body)
	}

	got, err := c.GetVersionWithResponse(ctx, "appserver", 1, viewer)
	if err != nil {
		return fmt.Errorf("read the version back: %w", err)
	}
	if got.StatusCode() != http.StatusOK || got.JSON200 == nil || got.JSON200.Semver == nil || !strings.HasPrefix(*got.JSON200.Semver, "1.0.4") {
		return fmt.Errorf("read the version back: %s %s", got.Status(), got.Body)
	}

	rep, err := c.FleetReportWithResponse(ctx, &kilnclient.FleetReportParams{}, viewer)
	if err != nil {
		return fmt.Errorf("fleet report: %w", err)
	}
	if rep.StatusCode() != http.StatusOK || rep.JSON200 == nil || rep.JSON200.Instances != 0 {
		return fmt.Errorf("fleet report: %s %s", rep.Status(), rep.Body)
	}

	// A viewer may not create images: 403 in the documented error shape.
	denied, err := c.CreateImageWithResponse(ctx, kilnclient.CreateImageJSONRequestBody{Name: "other"}, viewer)
	if err != nil {
		return fmt.Errorf("create image as viewer: %w", err)
	}
	if denied.StatusCode() != http.StatusForbidden || denied.JSON403 == nil || denied.JSON403.Code != "forbidden" ||
		!strings.Contains(denied.JSON403.Message, "needs the builder role") {
		return fmt.Errorf("create image as viewer: want 403 forbidden naming the builder role, got %s %s", denied.Status(), denied.Body)
	}

	// No token at all: 401, decoded as the documented error.
	anon, err := c.ListImagesWithResponse(ctx)
	if err != nil {
		return fmt.Errorf("list images without a token: %w", err)
	}
	if anon.StatusCode() != http.StatusUnauthorized || anon.JSON401 == nil || anon.JSON401.Code != "unauthorized" {
		return fmt.Errorf("list images without a token: want 401 unauthorized, got %s %s", anon.Status(), anon.Body)
	}
	return nil
}
