package api

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	kiln "github.com/kiln-project/kiln"
)

type webhooksOut struct {
	Body struct {
		Webhooks []*kiln.Webhook `json:"webhooks"`
	}
}

type webhookAddIn struct {
	Body struct {
		// Only bounds here: the domain's checks (kiln.Webhook.Validate)
		// give the same messages as a local `kiln webhook add`.
		URL    string   `json:"url" maxLength:"2048" example:"https://ci.example.com/hooks/kiln"`
		Secret string   `json:"secret" maxLength:"1024" doc:"HMAC-SHA256 key the payloads are signed with (at least 16 bytes); kept, never shown again"`
		Events []string `json:"events" maxItems:"10" doc:"ready, promoted"`
	}
}

type webhookOut struct{ Body *kiln.Webhook }

type webhookPath struct {
	ID int64 `path:"id" minimum:"1" example:"3"`
}

// registerWebhooks adds the webhook operations when the configuration
// gives a webhook store. All three need admin: a webhook makes the
// server send requests to any address it names, and webhook URLs often
// carry a credential of the receiving side (chat and CI hooks), so even
// the list is not for every viewer. Deliveries stay with the server's
// sender.
func (s *Server) registerWebhooks() {
	ws := s.cfg.Webhooks
	if ws == nil {
		return
	}
	register(s, RoleAdmin, huma.Operation{
		OperationID: "list-webhooks", Method: http.MethodGet, Path: "/api/v1/webhooks",
		Summary: "Webhooks by id (never their secrets)", Tags: []string{"webhooks"},
	}, func(ctx context.Context, _ *struct{}) (*webhooksOut, error) {
		list, err := ws.ListWebhooks(ctx)
		if err != nil {
			return nil, err
		}
		out := &webhooksOut{}
		out.Body.Webhooks = nonNil(list)
		return out, nil
	})

	register(s, RoleAdmin, huma.Operation{
		OperationID: "add-webhook", Method: http.MethodPost, Path: "/api/v1/webhooks",
		Summary: "Send events to a URL as JSON signed with HMAC-SHA256", Tags: []string{"webhooks"},
		DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *webhookAddIn) (*webhookOut, error) {
		w := &kiln.Webhook{URL: in.Body.URL, Secret: in.Body.Secret}
		for _, e := range in.Body.Events {
			w.Events = append(w.Events, kiln.WebhookEvent(e))
		}
		if err := w.Validate(); err != nil {
			return nil, bodyField(err, "")
		}
		if err := ws.AddWebhook(ctx, w); err != nil {
			return nil, bodyField(err, "")
		}
		return &webhookOut{Body: w}, nil
	})

	register(s, RoleAdmin, huma.Operation{
		OperationID: "delete-webhook", Method: http.MethodDelete, Path: "/api/v1/webhooks/{id}",
		Summary: "Remove a webhook and its delivery log", Tags: []string{"webhooks"}, DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *webhookPath) (*struct{}, error) {
		return nil, ws.DeleteWebhook(ctx, in.ID)
	})
}
