package verify

// Suite is a parsed set of server tests, ready to be sent to a probe. It is
// plain data: it encodes to JSON on the host and decodes inside the instance.
type Suite struct {
	// Files lists the test files read, the top file first, then includes.
	Files     []string   `json:"files,omitempty"`
	Resources []Resource `json:"resources"`
}

// Resource is one entry of a test file, such as `file: /etc/motd: {...}`.
type Resource struct {
	Type string `json:"type"`
	// ID is the entry's key as written in the file.
	ID string `json:"id"`
	// Target is what to probe (the path, package name, command line, URL…):
	// the type's naming attribute (path, exec, url…) or, without it, ID.
	Target string `json:"target"`
	// Source is file:line of the entry, for messages.
	Source string         `json:"source"`
	Title  string         `json:"title,omitempty"`
	Meta   map[string]any `json:"meta,omitempty"`
	// Skip reports every check of the resource as skipped, without probing.
	Skip bool `json:"skip,omitempty"`
	// TimeoutMS bounds commands, HTTP requests, connections, lookups and
	// mount checks; 0 means the type's default.
	TimeoutMS int          `json:"timeout_ms,omitempty"`
	HTTP      *HTTPOptions `json:"http,omitempty"`
	// LocalAddress is the address an addr resource connects from.
	LocalAddress string `json:"local_address,omitempty"`
	// Server is the DNS server ("host" or "host:port") a dns resource asks.
	Server string `json:"server,omitempty"`
	// Content is what a matching resource's matches are applied to: a
	// string, float64, bool, []any or map[string]any, as written.
	Content any     `json:"content,omitempty"`
	Checks  []Check `json:"checks"`
}

// HTTPOptions are the request settings of an http resource.
type HTTPOptions struct {
	Method            string   `json:"method,omitempty"`
	RequestHeaders    []string `json:"request_headers,omitempty"`
	RequestBody       string   `json:"request_body,omitempty"`
	Username          string   `json:"username,omitempty"`
	Password          string   `json:"password,omitempty"`
	Proxy             string   `json:"proxy,omitempty"`
	AllowInsecure     bool     `json:"allow_insecure,omitempty"`
	NoFollowRedirects bool     `json:"no_follow_redirects,omitempty"`
}

// Check is one attribute of a resource and what its value must match.
type Check struct {
	Property string   `json:"property"`
	Expect   *Matcher `json:"expect"`
}

// Count returns the number of checks in the suite, skipped ones included.
func (s *Suite) Count() int {
	n := 0
	for _, r := range s.Resources {
		n += len(r.Checks)
	}
	return n
}
