package cli

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

func (a *App) promoteCmd() *cobra.Command {
	var (
		to, estate, reason string
		vf                 varFlags
	)
	c := &cobra.Command{
		Use:   "promote IMAGE-N --to ENV",
		Short: "Point an environment's channel at a ready version that has been in the environment before it",
		Long: "The order of environments is the image's pipeline's (with --estate), else dev → staging → prod.\n" +
			"A version must be ready, and for every environment but the first it must have been promoted to\n" +
			"the one before. Each promotion is recorded and sent to the \"promoted\" webhooks.",
		Args: exactArgs(1, "a version name such as appserver-3"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := kiln.ParseVersionRef("version", args[0])
			if err != nil {
				return err
			}
			if err := kiln.ValidateEnvironment("--to", to); err != nil {
				return err
			}
			envs := kiln.DefaultEnvironments
			if estate != "" {
				est, err := vf.load(estate)
				if err != nil {
					return err
				}
				envs = nil
				for _, e := range est.PipelineFor(ref.Image).Environments {
					envs = append(envs, e.Name)
				}
			}
			prev := ""
			if i := slices.Index(envs, to); i > 0 {
				prev = envs[i-1]
			}
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			p, err := svc.Pipeline.Promote(cmd.Context(), ref, to, prev, reason)
			if err != nil {
				return err
			}
			a.sendWebhooks(cmd.Context(), svc)
			return a.render(cmd.OutOrStdout(), p, func(_ io.Writer) error {
				printPromotion(cmd, p)
				return nil
			})
		},
	}
	c.Flags().StringVar(&to, "to", "", "environment to promote to (required)")
	c.Flags().StringVar(&estate, "estate", "", "estate whose pipeline gives the order of environments")
	c.Flags().StringVar(&reason, "reason", "", "why, recorded with the promotion")
	_ = c.MarkFlagRequired("to")
	vf.add(c)
	return c
}

func printPromotion(cmd *cobra.Command, p *kiln.Promotion) {
	name := kiln.VersionRef{Image: p.Image, Number: p.Number}
	msg := fmt.Sprintf("%s: %s is now %s", p.Environment, p.Image, name)
	if p.Previous != 0 {
		msg += fmt.Sprintf(" (was %s-%d)", p.Image, p.Previous)
	}
	if p.Kind == kiln.PromotionRollback {
		msg = "rolled back " + msg
	}
	fmt.Fprintln(cmd.OutOrStdout(), msg)
}

func (a *App) channelCmd() *cobra.Command {
	c := group("channel", "Delivery channels: which version each environment uses")
	list := &cobra.Command{
		Use:   "list [IMAGE]",
		Short: "List channels: image, environment, version",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			image := ""
			if len(args) == 1 {
				image = args[0]
			}
			cs, err := svc.Pipeline.Channels(cmd.Context(), image)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), cs, func(w io.Writer) error {
				t := newTable(w, "IMAGE", "ENVIRONMENT", "VERSION", "SINCE", "BY")
				for _, ch := range cs {
					t.row(ch.Image, ch.Environment, ch.Name, ch.UpdatedAt.Format(time.RFC3339), ch.UpdatedBy)
				}
				return t.flush()
			})
		},
	}
	var image, reason string
	var force bool
	rollback := &cobra.Command{
		Use:   "rollback ENV",
		Short: "Point an environment back at the version it had before its latest promotion",
		Long: "A rollback that would land on a revoked version is refused, naming the revocation (who, why, when)\n" +
			"and the next version back in the channel's history that is not revoked; --force rolls back all the\n" +
			"same and is audited (the channel then resolves as a channel on a revoked version does: to the\n" +
			"newest version it held that is not revoked, naming the revoked one).",
		Args: exactArgs(1, "an environment, e.g. prod"),
		RunE: func(cmd *cobra.Command, args []string) error {
			env := args[0]
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			if image == "" {
				cs, err := svc.Pipeline.Channels(cmd.Context(), "")
				if err != nil {
					return err
				}
				var imgs []string
				for _, ch := range cs {
					if ch.Environment == env {
						imgs = append(imgs, ch.Image)
					}
				}
				switch len(imgs) {
				case 0:
					return kiln.Errorf(kiln.ENOTFOUND, "no image has a version in %s; see `kiln channel list`", env)
				case 1:
					image = imgs[0]
				default:
					return kiln.FieldErrorf(kiln.EINVALID, "--image", "%s holds versions of %s; say which with --image", env, strings.Join(imgs, ", "))
				}
			}
			p, err := svc.Pipeline.Rollback(cmd.Context(), image, env, reason, force)
			if err != nil {
				return err
			}
			a.sendWebhooks(cmd.Context(), svc)
			return a.render(cmd.OutOrStdout(), p, func(_ io.Writer) error {
				printPromotion(cmd, p)
				return nil
			})
		},
	}
	rollback.Flags().StringVar(&image, "image", "", "image to roll back (needed when ENV holds several)")
	rollback.Flags().StringVar(&reason, "reason", "", "why, recorded with the rollback")
	rollback.Flags().BoolVar(&force, "force", false, "roll back even onto a revoked version (audited)")
	var hImage, hEnv string
	var limit int
	history := &cobra.Command{
		Use:   "history",
		Short: "List recorded promotions and rollbacks, newest first",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			svc, err := a.pipelineServices(cmd.Context())
			if err != nil {
				return err
			}
			ps, err := svc.Pipeline.Promotions(cmd.Context(), hImage, hEnv, limit)
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), ps, func(w io.Writer) error {
				t := newTable(w, "ID", "TIME", "IMAGE", "ENVIRONMENT", "KIND", "VERSION", "PREVIOUS", "BY", "REASON")
				for _, p := range ps {
					prev := ""
					if p.Previous != 0 {
						prev = strconv.Itoa(p.Previous)
					}
					t.row(strconv.FormatInt(p.ID, 10), p.Time.Format(time.RFC3339), p.Image, p.Environment, string(p.Kind), strconv.Itoa(p.Number), prev, p.Actor, p.Reason)
				}
				return t.flush()
			})
		},
	}
	history.Flags().StringVar(&hImage, "image", "", "only this image")
	history.Flags().StringVar(&hEnv, "env", "", "only this environment")
	history.Flags().IntVar(&limit, "limit", 50, "how many to show")
	c.AddCommand(list, rollback, history)
	return c
}
