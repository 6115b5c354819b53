package cli

import (
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	kiln "github.com/kiln-project/kiln"
)

func (a *App) imageCmd() *cobra.Command {
	cmd := group("image", "Manage image lines (basic-linux, appserver, …)")
	var desc string
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an image line with its own version history",
		Args:  exactArgs(1, "the image name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := a.registry(cmd)
			if err != nil {
				return err
			}
			img := &kiln.Image{Name: args[0], Description: desc}
			if err := reg.CreateImage(cmd.Context(), img); err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), img, func(_ io.Writer) error {
				cmd.Println(img.Name)
				return nil
			})
		},
	}
	create.Flags().StringVar(&desc, "description", "", "what this image line is for")

	list := &cobra.Command{
		Use:   "list",
		Short: "List image lines",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkFormat(a.cfg.Output, FormatTable, FormatJSON); err != nil {
				return err
			}
			reg, err := a.registry(cmd)
			if err != nil {
				return err
			}
			imgs, err := reg.ListImages(cmd.Context())
			if err != nil {
				return err
			}
			return a.render(cmd.OutOrStdout(), orEmpty(imgs), func(w io.Writer) error {
				t := newTable(w, "IMAGE", "VERSIONS", "CREATED", "DESCRIPTION")
				for _, img := range imgs {
					t.row(img.Name, strconv.Itoa(img.LatestNumber), img.CreatedAt.UTC().Format(time.RFC3339), img.Description)
				}
				return t.flush()
			})
		},
	}
	cmd.AddCommand(create, list)
	return cmd
}
