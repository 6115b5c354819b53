package cli

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
	"github.com/kiln-project/kiln/pipeline"
)

func (a *App) webhookCmd() *cobra.Command {
	c := group("webhook", "Webhooks: signed JSON sent on new ready versions and promotions")
	var secretFile string
	var events []string
	add := &cobra.Command{
		Use:   "add URL --secret-file FILE --event ready,promoted",
		Short: "Send events to URL as JSON signed with HMAC-SHA256 (header X-Kiln-Signature-256: sha256=HEX)",
		Args:  exactArgs(1, "the URL to POST to"),
		RunE: func(cmd *cobra.Command, args []string) error {
			secret, err := os.ReadFile(secretFile)
			if err != nil {
				return kiln.FieldErrorf(kiln.EINVALID, "--secret-file", "cannot read the secret: %v; write one with `openssl rand -hex 32 > FILE`", err)
			}
			w := &kiln.Webhook{URL: args[0], Secret: strings.TrimSpace(string(secret))}
			for _, e := range events {
				ev, err := kiln.ParseWebhookEvent("--event", e)
				if err != nil {
					return err
				}
				w.Events = append(w.Events, ev)
			}
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			if err := svc.Pipeline.AddWebhook(cmd.Context(), w); err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), w, func(out io.Writer) error {
				fmt.Fprintf(out, "webhook %d: %s on %s\n", w.ID, w.Endpoint, strings.Join(events, ","))
				return nil
			})
		},
	}
	add.Flags().StringVar(&secretFile, "secret-file", "", "file holding the HMAC secret (at least 16 bytes)")
	add.Flags().StringSliceVar(&events, "event", []string{"ready", "promoted"}, "events to send: ready, promoted")
	_ = add.MarkFlagRequired("secret-file")

	list := &cobra.Command{
		Use:   "list",
		Short: "List webhooks",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			ws, err := svc.Pipeline.ListWebhooks(cmd.Context())
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), ws, func(out io.Writer) error {
				t := newTable(out, "ID", "ENDPOINT", "EVENTS", "CREATED", "BY")
				for _, w := range ws {
					ev := make([]string, len(w.Events))
					for i, e := range w.Events {
						ev[i] = string(e)
					}
					t.row(strconv.FormatInt(w.ID, 10), w.Endpoint, strings.Join(ev, ","), w.CreatedAt.Format(time.RFC3339), w.CreatedBy)
				}
				return t.flush()
			})
		},
	}
	remove := &cobra.Command{
		Use:   "remove ID",
		Short: "Remove a webhook and its delivery log",
		Args:  exactArgs(1, "a webhook id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return kiln.FieldErrorf(kiln.EINVALID, "id", "%q is not a webhook id; see `kiln webhook list`", args[0])
			}
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			return svc.Pipeline.DeleteWebhook(cmd.Context(), id)
		},
	}
	var send bool
	deliveries := &cobra.Command{
		Use:   "deliveries [ID]",
		Short: "Show the delivery log (all webhooks, or one); --send first sends what is due",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var id int64
			if len(args) == 1 {
				var err error
				if id, err = strconv.ParseInt(args[0], 10, 64); err != nil {
					return kiln.FieldErrorf(kiln.EINVALID, "id", "%q is not a webhook id", args[0])
				}
			}
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			if send {
				s := &pipeline.Sender{Store: svc.Pipeline, Logger: a.Logger()}
				if _, err := s.SendDue(cmd.Context()); err != nil {
					return err
				}
			}
			ds, err := svc.Pipeline.Deliveries(cmd.Context(), id, 100)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), ds, func(w io.Writer) error {
				t := newTable(w, "ID", "WEBHOOK", "EVENT", "STATUS", "ATTEMPTS", "HTTP", "CREATED", "NEXT", "ERROR")
				for _, d := range ds {
					next := ""
					if d.Status == kiln.DeliveryPending && !d.NextAttemptAt.IsZero() {
						next = d.NextAttemptAt.Format(time.RFC3339)
					}
					t.row(strconv.FormatInt(d.ID, 10), strconv.FormatInt(d.WebhookID, 10), string(d.Event), string(d.Status),
						strconv.Itoa(d.Attempts), strconv.Itoa(d.ResponseStatus), d.CreatedAt.Format(time.RFC3339), next, d.LastError)
				}
				return t.flush()
			})
		},
	}
	deliveries.Flags().BoolVar(&send, "send", false, "send due deliveries first")
	c.AddCommand(add, list, remove, deliveries)
	return c
}
