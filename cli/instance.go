package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

// fleetServices returns the inventory, fleet and advisory store, or says
// what is missing.
func (a *App) fleetServices(ctx context.Context) (*Services, error) {
	svc, err := a.Services(ctx)
	if err != nil {
		return nil, err
	}
	if svc.Inventory == nil || svc.Fleet == nil || svc.Advisories == nil {
		return nil, kiln.Errorf(kiln.EUNAVAILABLE, "this kiln has no fleet store configured")
	}
	return svc, nil
}

func (a *App) instanceCmd() *cobra.Command {
	cmd := group("instance", "Launch, register, list and manage instances made from image versions")
	cmd.AddCommand(a.instanceRegisterCmd(), a.instanceImportCmd(), a.instanceListCmd(), a.instanceShowCmd(), a.instanceDeregisterCmd())
	return cmd
}

func (a *App) instanceRegisterCmd() *cobra.Command {
	var (
		image, id, name, env, launchedAt, platform, address string
		number                                              int
		labels                                              []string
		allowUnknown                                        bool
	)
	c := &cobra.Command{
		Use:   "register",
		Short: "Record an instance launched outside kiln; prints its id",
		Args:  exactArgs(0, "no arguments (use flags)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if image == "" || number == 0 {
				return kiln.FieldErrorf(kiln.EINVALID, "--image", "give the image and version the instance was made from: --image appserver --version 2")
			}
			inst := &kiln.Instance{ID: id, Name: name, Version: kiln.VersionRef{Image: image, Number: number},
				Environment: env, Platform: platform, Address: address}
			if launchedAt != "" {
				t, err := time.Parse(time.RFC3339, launchedAt)
				if err != nil {
					return kiln.FieldErrorf(kiln.EINVALID, "--launched-at", "%q is not an RFC 3339 time; write e.g. 2026-03-01T12:00:00Z", launchedAt)
				}
				inst.LaunchedAt = t
			}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok {
					return kiln.FieldErrorf(kiln.EINVALID, "--label", "label %q has no '='; write KEY=VALUE", l)
				}
				if inst.Labels == nil {
					inst.Labels = map[string]string{}
				}
				inst.Labels[k] = v
			}
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			if err := svc.Fleet.RegisterInstances(cmd.Context(), []*kiln.Instance{inst}, kiln.RegisterOptions{AllowUnknown: allowUnknown}); err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), inst, func(_ io.Writer) error {
				cmd.Println(inst.ID)
				return nil
			})
		},
	}
	f := c.Flags()
	f.StringVar(&image, "image", "", "image the instance was made from (required)")
	f.IntVar(&number, "version", 0, "version number of that image (required)")
	f.StringVar(&id, "id", "", "the instance's id, e.g. its cloud instance id (default: assigned)")
	f.StringVar(&name, "name", "", "a unique name (default: the id)")
	f.StringVar(&env, "env", "", "environment: dev, staging, prod…")
	f.StringVar(&platform, "platform", "external", "where it runs")
	f.StringVar(&address, "address", "", "its address")
	f.StringVar(&launchedAt, "launched-at", "", "when it was launched, RFC 3339 (default: now)")
	f.StringArrayVar(&labels, "label", nil, "label KEY=VALUE (repeatable)")
	f.BoolVar(&allowUnknown, "allow-unknown", false, "keep it even if the registry does not know the version (flagged in reports)")
	return c
}

func (a *App) instanceImportCmd() *cobra.Command {
	var allowUnknown bool
	c := &cobra.Command{
		Use:   "import FILE",
		Short: "Register many instances from a CSV or JSON-lines file, all or none",
		Long: `Register many instances from a file, in one transaction: one bad row is
reported with its line number and nothing of the file is imported.

CSV: a header row naming the columns, then one instance per row. Columns:
image and version (required), id, name, environment, platform, state,
address, launched_at (RFC 3339), labels (KEY=VALUE;KEY=VALUE).

JSON lines (*.jsonl, *.ndjson, or a file starting with '{'): one object per
line with the same fields; labels is an object, version a number.`,
		Args: exactArgs(1, "the file to import"),
		RunE: func(cmd *cobra.Command, args []string) error {
			insts, where, err := readInstances(args[0])
			if err != nil {
				return err
			}
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			if err := svc.Fleet.RegisterInstances(cmd.Context(), insts, kiln.RegisterOptions{AllowUnknown: allowUnknown, Where: where}); err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), map[string]int{"imported": len(insts)}, func(_ io.Writer) error {
				cmd.Printf("imported %d instances from %s\n", len(insts), args[0])
				return nil
			})
		},
	}
	c.Flags().BoolVar(&allowUnknown, "allow-unknown", false, "keep instances of versions the registry does not know (flagged in reports)")
	return c
}

// instanceRecord is one imported instance, in JSON lines.
type instanceRecord struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Image       string            `json:"image"`
	Version     int               `json:"version"`
	Environment string            `json:"environment"`
	Platform    string            `json:"platform"`
	State       string            `json:"state"`
	Address     string            `json:"address"`
	LaunchedAt  string            `json:"launched_at"`
	Labels      map[string]string `json:"labels"`
}

func (r *instanceRecord) instance(where string) (*kiln.Instance, error) {
	inst := &kiln.Instance{ID: r.ID, Name: r.Name, Version: kiln.VersionRef{Image: r.Image, Number: r.Version},
		Environment: r.Environment, Platform: r.Platform, State: kiln.InstanceState(r.State), Address: r.Address, Labels: r.Labels}
	if r.Image == "" {
		return nil, kiln.FieldErrorf(kiln.EINVALID, where, "image is empty; every instance needs image and version")
	}
	if r.LaunchedAt != "" {
		t, err := time.Parse(time.RFC3339, r.LaunchedAt)
		if err != nil {
			return nil, kiln.FieldErrorf(kiln.EINVALID, where, "launched_at %q is not an RFC 3339 time, e.g. 2026-03-01T12:00:00Z", r.LaunchedAt)
		}
		inst.LaunchedAt = t
	}
	if err := kiln.ValidateInstance("", inst); err != nil {
		var ke *kiln.Error
		if errors.As(err, &ke) {
			return nil, kiln.FieldErrorf(ke.Code, where, "%s: %s", ke.Field, ke.Message)
		}
		return nil, err
	}
	return inst, nil
}

var instanceColumns = []string{"id", "name", "image", "version", "environment", "platform", "state", "address", "launched_at", "labels"}

// readInstances reads an import file; where names each instance's line.
func readInstances(path string) ([]*kiln.Instance, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, kiln.FieldErrorf(kiln.EINVALID, path, "cannot read the file: %v", errors.Unwrap(err))
	}
	name := filepath.Base(path)
	ext := strings.ToLower(filepath.Ext(path))
	var insts []*kiln.Instance
	var where []string
	if ext == ".jsonl" || ext == ".ndjson" || ext == ".json" || bytes.HasPrefix(bytes.TrimSpace(data), []byte("{")) {
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		line := 0
		for sc.Scan() {
			line++
			text := bytes.TrimSpace(sc.Bytes())
			if len(text) == 0 {
				continue
			}
			at := fmt.Sprintf("%s:%d", name, line)
			var rec instanceRecord
			dec := json.NewDecoder(bytes.NewReader(text))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rec); err != nil {
				return nil, nil, kiln.FieldErrorf(kiln.EINVALID, at, "not a JSON instance object: %v; known fields: %s", err, strings.Join(instanceColumns, ", "))
			}
			inst, err := rec.instance(at)
			if err != nil {
				return nil, nil, err
			}
			insts, where = append(insts, inst), append(where, at)
		}
		if err := sc.Err(); err != nil {
			return nil, nil, kiln.FieldErrorf(kiln.EINVALID, fmt.Sprintf("%s:%d", name, line+1), "%v", err)
		}
	} else {
		r := csv.NewReader(bytes.NewReader(data))
		r.TrimLeadingSpace = true
		header, err := r.Read()
		if err != nil {
			return nil, nil, kiln.FieldErrorf(kiln.EINVALID, name+":1", "cannot read the CSV header: %v", err)
		}
		col := map[string]int{}
		for i, h := range header {
			h = strings.ToLower(strings.TrimSpace(h))
			known := false
			for _, k := range instanceColumns {
				known = known || k == h
			}
			if !known {
				return nil, nil, kiln.FieldErrorf(kiln.EINVALID, fmt.Sprintf("%s:1", name), "unknown column %q; use %s", h, strings.Join(instanceColumns, ", "))
			}
			col[h] = i
		}
		if _, ok := col["image"]; !ok {
			return nil, nil, kiln.FieldErrorf(kiln.EINVALID, name+":1", "the header has no image column; image and version are required")
		}
		if _, ok := col["version"]; !ok {
			return nil, nil, kiln.FieldErrorf(kiln.EINVALID, name+":1", "the header has no version column; image and version are required")
		}
		for {
			rec, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			line, _ := r.FieldPos(0)
			at := fmt.Sprintf("%s:%d", name, line)
			if err != nil {
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					at = fmt.Sprintf("%s:%d:%d", name, pe.Line, pe.Column)
					err = pe.Err
				}
				return nil, nil, kiln.FieldErrorf(kiln.EINVALID, at, "bad CSV: %v", err)
			}
			get := func(k string) string {
				if i, ok := col[k]; ok && i < len(rec) {
					return strings.TrimSpace(rec[i])
				}
				return ""
			}
			ir := instanceRecord{ID: get("id"), Name: get("name"), Image: get("image"), Environment: get("environment"),
				Platform: get("platform"), State: get("state"), Address: get("address"), LaunchedAt: get("launched_at")}
			if v := get("version"); v != "" {
				n, err := strconv.Atoi(strings.TrimPrefix(v, ir.Image+"-"))
				if err != nil {
					return nil, nil, kiln.FieldErrorf(kiln.EINVALID, at, "version %q is not a number ≥ 1", v)
				}
				ir.Version = n
			}
			if ls := get("labels"); ls != "" {
				ir.Labels = map[string]string{}
				for _, kv := range strings.Split(ls, ";") {
					k, v, ok := strings.Cut(kv, "=")
					if !ok {
						return nil, nil, kiln.FieldErrorf(kiln.EINVALID, at, "label %q has no '='; write labels as KEY=VALUE;KEY=VALUE", kv)
					}
					ir.Labels[strings.TrimSpace(k)] = strings.TrimSpace(v)
				}
			}
			inst, err := ir.instance(at)
			if err != nil {
				return nil, nil, err
			}
			insts, where = append(insts, inst), append(where, at)
		}
	}
	if len(insts) == 0 {
		return nil, nil, kiln.FieldErrorf(kiln.EINVALID, name, "the file lists no instances")
	}
	return insts, where, nil
}

func (a *App) instanceListCmd() *cobra.Command {
	var (
		image, env, platform string
		states               []string
		limit, number        int
	)
	c := &cobra.Command{
		Use:   "list",
		Short: "List instances (all but destroyed ones unless --state)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON, FormatCSV); err != nil {
				return err
			}
			f := kiln.InstanceFilter{Environment: env, Platform: platform, Limit: limit}
			f.Image = image
			if number > 0 {
				if image == "" {
					return kiln.FieldErrorf(kiln.EINVALID, "--version", "--version needs --image")
				}
				f.Version = &kiln.VersionRef{Image: image, Number: number}
			}
			for _, s := range states {
				for _, part := range strings.Split(s, ",") {
					st, err := kiln.ParseInstanceState("--state", part)
					if err != nil {
						return err
					}
					f.States = append(f.States, st)
				}
			}
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			// Show the truth: instances that crashed or vanished while no
			// kiln was watching are marked so before listing.
			if svc.Reconcile != nil {
				if err := svc.Reconcile(cmd.Context()); err != nil {
					a.Logger().Warn("reconcile instances with the platform", "err", err)
				}
			}
			is, total, err := svc.Inventory.ListInstances(cmd.Context(), f)
			if err != nil {
				return err
			}
			return a.writeInstances(cmd, is, total)
		},
	}
	c.Flags().StringVar(&image, "image", "", "only instances of this image")
	c.Flags().IntVar(&number, "version", 0, "with --image: only this version")
	c.Flags().StringVar(&env, "env", "", "only this environment")
	c.Flags().StringVar(&platform, "platform", "", "only this platform")
	c.Flags().StringArrayVar(&states, "state", nil, "only these states (repeatable or comma-separated)")
	c.Flags().IntVar(&limit, "limit", 100, "show at most this many (0: all)")
	return c
}

func (a *App) writeInstances(cmd *cobra.Command, is []*kiln.Instance, total int) error {
	w := cmd.OutOrStdout()
	header := []string{"ID", "NAME", "VERSION", "ENV", "STATE", "PLATFORM", "LAUNCHED", "LAST SEEN", "TAINTED"}
	rows := make([][]string, 0, len(is))
	for _, i := range is {
		seen := ""
		if !i.LastSeenAt.IsZero() {
			seen = i.LastSeenAt.UTC().Format(time.RFC3339)
		}
		tainted := ""
		if i.Tainted {
			// break-glass access was opened: shown until the instance is replaced
			tainted = "yes"
		}
		rows = append(rows, []string{i.ID, i.Name, i.Version.String(), i.Environment, string(i.State), i.Platform,
			i.LaunchedAt.UTC().Format(time.RFC3339), seen, tainted})
	}
	switch a.cfg.Output {
	case FormatJSON:
		return writeJSON(w, map[string]any{"instances": is, "total": total})
	case FormatCSV:
		return writeCSV(w, header, rows)
	}
	t := newTable(w, header...)
	for _, r := range rows {
		t.row(r...)
	}
	if err := t.flush(); err != nil {
		return err
	}
	if total > len(is) {
		fmt.Fprintf(w, "(%d of %d shown; use --limit)\n", len(is), total)
	}
	return nil
}

func (a *App) instanceShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "show ID|NAME",
		Short: "Show one instance",
		Args:  exactArgs(1, "the instance id or name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			inst, err := svc.Inventory.FindInstance(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), inst)
		},
	}
}

func (a *App) instanceDeregisterCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "deregister ID|NAME",
		Short: "Remove an instance record (the server itself is not touched)",
		Args:  exactArgs(1, "the instance id or name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.fleetServices(cmd.Context())
			if err != nil {
				return err
			}
			if err := svc.Inventory.DeleteInstance(cmd.Context(), args[0]); err != nil {
				return err
			}
			cmd.Printf("deregistered %s\n", args[0])
			return nil
		},
	}
}
