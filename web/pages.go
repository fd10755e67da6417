package web

import (
	"bytes"
	"context"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Page is a registered HTML page and the roles that may open it.
type Page struct {
	Path  string
	File  string
	Roles []string
}

// pages of the platform. Each is served only to its roles: a visitor
// without a session is sent to the login page, one with the wrong role gets
// 403. The data on them comes from the API, which checks again.
var pages = []Page{
	{"/wall", "wall.html", supervisors},
	{"/admin", "admin.html", adminOnly},
	{"/dashboard", "dashboard.html", supervisors},
	{"/incident", "incident.html", staff},
	{"/incidents", "incidents.html", staff},
	{"/upload", "upload.html", uploaders},
	{"/live", "live.html", supervisors},
	{"/map", "map.html", supervisors},
}

// homeOf is where a role lands after logging in.
func homeOf(role string) string {
	switch role {
	case "supervisor":
		return "/wall"
	case "admin":
		return "/admin"
	case "reviewer":
		return "/incidents"
	case "officer":
		return "/upload"
	default:
		return "/account"
	}
}

// tilesMeta is the placeholder of the map's tile server in a page; the
// setting replaces its content once, at start.
const tilesMeta = `<meta name="bwc-map-tiles" content="">`

// pageRoutes serves the pages (behind the session check: a page needs a
// session, not a CSRF token) and their assets. tiles is the map's tile
// server URL template ("" : none): the pages name it, and their CSP lets
// images come from its origin.
func pageRoutes(rt *router, tiles string) {
	static, _ := fs.Sub(staticFiles, "static")
	mux := rt.mux
	tileSrc := tileOrigin(tiles)
	for _, p := range pages {
		body, err := fs.ReadFile(static, p.File)
		if err != nil {
			panic("web: page " + p.File + " is not embedded")
		}
		body = bytes.Replace(body, []byte(tilesMeta),
			[]byte(`<meta name="bwc-map-tiles" content="`+template.HTMLEscapeString(tiles)+`">`), 1)
		mux.HandleFunc("GET "+p.Path, func(w http.ResponseWriter, r *http.Request) {
			pr, _, err := rt.authenticate(r)
			if err != nil {
				if !rt.edge.limitFailedAuth(w, r) {
					return
				}
				http.Redirect(w, r, "/?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			if pr.MustChangePassword { // the API would refuse the page's calls
				http.Redirect(w, r, "/account", http.StatusSeeOther)
				return
			}
			if !slices.Contains(p.Roles, pr.Role) {
				rt.kit.auditRefusal(r.WithContext(context.WithValue(r.Context(), principalKey{}, pr)), "", "role "+pr.Role)
				forbiddenPage(w, pr.Role)
				return
			}
			if rt.mfa != nil && !rt.mfa.pageGate(w, r, pr) {
				return
			}
			servePageImages(w, body, tileSrc)
		})
	}
	login, err := fs.ReadFile(static, "login.html")
	if err != nil {
		panic("web: login.html is not embedded")
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		pr, _, err := rt.authenticate(r)
		if err == nil && r.URL.Query().Get("next") == "" {
			home := homeOf(pr.Role)
			if pr.MustChangePassword {
				home = "/account"
			}
			http.Redirect(w, r, home, http.StatusSeeOther)
			return
		}
		if err != nil && !rt.edge.limitFailedAuth(w, r) {
			return
		}
		servePage(w, login)
	})
	account, err := fs.ReadFile(static, "account.html")
	if err != nil {
		panic("web: account.html is not embedded")
	}
	mux.HandleFunc("GET /account", func(w http.ResponseWriter, r *http.Request) {
		if _, _, err := rt.authenticate(r); err != nil {
			if !rt.edge.limitFailedAuth(w, r) {
				return
			}
			http.Redirect(w, r, "/?next=/account", http.StatusSeeOther)
			return
		}
		servePage(w, account)
	})
	assets, _ := fs.Sub(static, "assets")
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
}

// tileOrigin is the scheme://host[:port] of a tile URL template ("" when
// there is none or it is not an absolute http(s) URL).
func tileOrigin(tiles string) string {
	if tiles == "" {
		return ""
	}
	u, err := url.Parse(strings.NewReplacer("{z}", "0", "{x}", "0", "{y}", "0", "{s}", "a").Replace(tiles))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

func servePage(w http.ResponseWriter, body []byte) { servePageImages(w, body, "") }

// servePageImages serves a page whose images may also come from origin
// (the map's tile server; "" : none).
func servePageImages(w http.ResponseWriter, body []byte, origin string) {
	imgSrc := "'self' data: blob:"
	if origin != "" {
		imgSrc += " " + origin
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src "+imgSrc+"; media-src 'self' blob:; connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

var forbiddenTmpl = template.Must(template.New("403").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>403</title><link rel="stylesheet" href="/assets/app.css"></head>
<body><main class="narrow"><h1>403</h1>
<p>Your role ({{.}}) may not open this page. · 您的角色（{{.}}）无权访问此页面。</p>
<p><a href="/">Back · 返回</a></p></main></body></html>`))

func forbiddenPage(w http.ResponseWriter, role string) {
	var b bytes.Buffer
	_ = forbiddenTmpl.Execute(&b, role)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	w.Write(b.Bytes())
}
