package web

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"io/fs"
	"net/http"
	"slices"

	"github.com/google/uuid"
	"github.com/pquerna/otp"

	"github.com/bwcplatform/bwc/storage/index"
)

// The second factor of local accounts (TOTP with recovery codes):
// enrolment, the check at login, disabling one's own and an
// administrator's reset, and the gate that keeps a user whose role
// requires a second factor (Config.MFARequiredRoles) to enrolment until
// they have one.

// SecondFactors is what the second factor needs of the database.
type SecondFactors interface {
	SecondFactorOf(ctx context.Context, userID uuid.UUID) (index.SecondFactor, error)
	SecondFactorEnrolled(ctx context.Context, userID uuid.UUID) (bool, error)
	StartTOTP(ctx context.Context, userID uuid.UUID, login, issuer string) (index.TOTPEnrolment, error)
	ConfirmTOTP(ctx context.Context, userID uuid.UUID, code string) ([]string, error)
	CheckSecondFactor(ctx context.Context, u index.User, code string) (string, error)
	DisableTOTP(ctx context.Context, u index.User, password, code string) error
	ResetSecondFactor(ctx context.Context, userID uuid.UUID) (index.User, error)
}

// totpIssuer names the platform in authenticator apps.
const totpIssuer = "BWC"

// secondFactor: the handler group, and the enrolment gate the router and
// the pages ask.
type secondFactor struct {
	db       SecondFactors
	required []string // roles that must have a second factor
	kit      *kit
}

// beforeEnrolment are the routes a session that must enrol first may
// reach: who am I, logging out, enrolment itself, and the password change
// an administrator's reset may demand first (passwordChangeRoutes).
var beforeEnrolment = map[string]bool{
	"GET /api/session":           true,
	"POST /api/logout":           true,
	"POST /api/password":         true,
	"GET /api/mfa/totp":          true,
	"POST /api/mfa/totp":         true,
	"POST /api/mfa/totp/confirm": true,
}

func (m *secondFactor) routes(r *router) {
	r.handle("GET /api/mfa/totp", anyone, m.status)
	r.handle("POST /api/mfa/totp", anyone, m.start)
	r.handle("POST /api/mfa/totp/confirm", anyone, m.confirm)
	r.handle("DELETE /api/mfa/totp", anyone, m.disable)
	r.handle("DELETE /api/users/{id}/mfa", adminOnly, m.reset)
	page, err := fs.ReadFile(staticFiles, "static/mfa.html")
	if err != nil {
		panic("web: mfa.html is not embedded")
	}
	r.mux.HandleFunc("GET /mfa", func(w http.ResponseWriter, req *http.Request) {
		p, _, err := r.authenticate(req)
		if err != nil {
			if !r.edge.limitFailedAuth(w, req) {
				return
			}
			http.Redirect(w, req, "/?next=/mfa", http.StatusSeeOther)
			return
		}
		if p.MustChangePassword { // first the password (accounts.go), then enrolment
			http.Redirect(w, req, "/account", http.StatusSeeOther)
			return
		}
		servePage(w, page)
	})
}

// requiredFor: the role must have a second factor.
func (m *secondFactor) requiredFor(role string) bool { return slices.Contains(m.required, role) }

// enrolmentRequired: p is a user of a role that must have a second factor,
// without one. API tokens (no user) and sessions whose second factor was
// checked elsewhere (Principal.ExternalMFA: an identity provider) are not
// held.
func (m *secondFactor) enrolmentRequired(ctx context.Context, p Principal) (bool, error) {
	if m == nil || p.UserID == uuid.Nil || p.ExternalMFA || !m.requiredFor(p.Role) {
		return false, nil
	}
	ok, err := m.db.SecondFactorEnrolled(ctx, p.UserID)
	return !ok, err
}

// gate answers 403 (audited as access.refused, like the router's other
// refusals) to a session that must enrol first, on every route but
// beforeEnrolment's; false when it answered. The request's context holds
// the principal.
func (m *secondFactor) gate(w http.ResponseWriter, r *http.Request, pattern string, p Principal) bool {
	if beforeEnrolment[pattern] {
		return true
	}
	need, err := m.enrolmentRequired(r.Context(), p)
	switch {
	case err != nil:
		m.kit.fail(w, r, err)
		return false
	case need:
		m.kit.auditRefusal(r, r.PathValue("id"), "second factor enrolment required")
		writeJSON(w, http.StatusForbidden, mfaError{Error: "second factor enrolment required: set up TOTP first (POST /api/mfa/totp, the /mfa page)", EnrolmentRequired: true})
		return false
	}
	return true
}

// pageGate sends a session that must enrol first to the enrolment page;
// false when it did.
func (m *secondFactor) pageGate(w http.ResponseWriter, r *http.Request, p Principal) bool {
	need, err := m.enrolmentRequired(r.Context(), p)
	if err != nil {
		m.kit.fail(w, r, err)
		return false
	}
	if need {
		http.Redirect(w, r, "/mfa", http.StatusSeeOther)
		return false
	}
	return true
}

// mfaError is an error answer that says, machine-readably, what the
// client must do: send a code (login) or enrol.
type mfaError struct {
	Error             string `json:"error"`
	Field             string `json:"field,omitempty"`
	MFARequired       bool   `json:"mfa_required,omitempty"`
	EnrolmentRequired bool   `json:"mfa_enrolment_required,omitempty"`
}

// checkLogin checks the second factor of a login whose password was right.
// A user with TOTP enabled must send code: without it the answer is 401
// {"mfa_required": true}, with a wrong one too, counted as a failed login.
// It reports whether the session to be made must enrol first, and false
// when it answered (no session may be made).
func (m *secondFactor) checkLogin(w http.ResponseWriter, r *http.Request, u index.User, code string) (enrol, ok bool) {
	enrolled, err := m.db.SecondFactorEnrolled(r.Context(), u.ID)
	if err != nil {
		m.kit.fail(w, r, err)
		return false, false
	}
	if !enrolled {
		return m.requiredFor(u.Role), true
	}
	ev := index.AuditEvent{Actor: u.Login, Role: u.Role, ObjectType: "user", ObjectID: u.Login}
	remote := clientAddr(r)
	if code == "" {
		ev.Action = "auth.login.mfa_required"
		_ = m.kit.audit(r, ev)
		writeJSON(w, http.StatusUnauthorized, mfaError{Error: "second factor required: send code (from the authenticator app, or a recovery code)", Field: "code", MFARequired: true})
		return false, false
	}
	method, err := m.db.CheckSecondFactor(r.Context(), u, code)
	switch {
	case errors.Is(err, index.ErrLocked):
		m.kit.log.Warn("login refused: account locked", "login", u.Login, "remote", remote)
		ev.Action = "auth.login.locked"
		_ = m.kit.audit(r, ev)
		writeJSON(w, http.StatusTooManyRequests, apiError{Error: err.Error()})
		return false, false
	case errors.Is(err, index.ErrBadSecondFactor):
		m.kit.log.Warn("login failed: wrong second factor", "login", u.Login, "remote", remote, "reused", errors.Is(err, index.ErrCodeReused))
		ev.Action = "auth.login.mfa_failed"
		ev.Details = map[string]any{"reused": errors.Is(err, index.ErrCodeReused)}
		_ = m.kit.audit(r, ev)
		writeJSON(w, http.StatusUnauthorized, mfaError{Error: err.Error(), Field: "code", MFARequired: true})
		return false, false
	case err != nil:
		m.kit.fail(w, r, err)
		return false, false
	}
	if method == index.MethodRecovery {
		st, _ := m.db.SecondFactorOf(r.Context(), u.ID)
		ev.Action = "auth.login.recovery_code"
		ev.Details = map[string]any{"recovery_codes_left": st.RecoveryCodes}
		_ = m.kit.audit(r, ev)
	}
	return false, true
}

// user is the logged-in user of a request; API tokens have none (403).
func (m *secondFactor) user(w http.ResponseWriter, r *http.Request) (index.User, bool) {
	p, _ := PrincipalFrom(r.Context())
	if p.UserID == uuid.Nil {
		writeJSON(w, http.StatusForbidden, apiError{Error: "only a logged-in user has a second factor, not an API token"})
		return index.User{}, false
	}
	return index.User{ID: p.UserID, Login: p.Login, Role: p.Role, Unit: p.Unit, OfficerID: p.OfficerID}, true
}

// status: GET /api/mfa/totp, one's own second factor and whether the role
// requires one.
func (m *secondFactor) status(w http.ResponseWriter, r *http.Request) {
	u, ok := m.user(w, r)
	if !ok {
		return
	}
	st, err := m.db.SecondFactorOf(r.Context(), u.ID)
	if err != nil {
		m.kit.fail(w, r, err)
		return
	}
	p, _ := PrincipalFrom(r.Context())
	writeJSON(w, http.StatusOK, map[string]any{"enrolled": st.Enrolled, "enabled_at": st.EnabledAt, "pending": st.Pending,
		"recovery_codes": st.RecoveryCodes, "required": m.requiredFor(u.Role) && !p.ExternalMFA})
}

// start: POST /api/mfa/totp, a new secret as text, otpauth:// URL and QR
// code (PNG data URL); it is enabled by confirm.
func (m *secondFactor) start(w http.ResponseWriter, r *http.Request) {
	u, ok := m.user(w, r)
	if !ok {
		return
	}
	enr, err := m.db.StartTOTP(r.Context(), u.ID, u.Login, totpIssuer)
	if err != nil {
		m.kit.fail(w, r, err)
		return
	}
	qr, err := qrDataURL(enr.URL)
	if err != nil {
		m.kit.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"secret": enr.Secret, "otpauth_url": enr.URL, "qr_png": qr})
}

// qrDataURL draws an otpauth:// URL as a QR code, a PNG data URL.
func qrDataURL(url string) (string, error) {
	key, err := otp.NewKeyFromURL(url)
	if err != nil {
		return "", fmt.Errorf("QR code: %w", err)
	}
	img, err := key.Image(240, 240)
	if err != nil {
		return "", fmt.Errorf("QR code: %w", err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return "", fmt.Errorf("QR code: %w", err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes()), nil
}

// confirm: POST /api/mfa/totp/confirm {code}, enables the enrolment and
// returns the recovery codes, once.
func (m *secondFactor) confirm(w http.ResponseWriter, r *http.Request) {
	u, ok := m.user(w, r)
	if !ok {
		return
	}
	var in struct {
		Code string `json:"code"`
	}
	if !decode(w, r, &in) {
		return
	}
	if in.Code == "" || len(in.Code) > index.MaxSecondFactorLen {
		writeJSON(w, http.StatusBadRequest, apiError{Error: "code: the 6 digits the authenticator app shows", Field: "code"})
		return
	}
	codes, err := m.db.ConfirmTOTP(r.Context(), u.ID, in.Code)
	switch {
	case errors.Is(err, index.ErrBadSecondFactor):
		writeJSON(w, http.StatusBadRequest, apiError{Error: "code: not the current code of this secret (check the phone's clock)", Field: "code"})
		return
	case errors.Is(err, index.ErrNoSecondFactor):
		writeJSON(w, http.StatusConflict, apiError{Error: err.Error()})
		return
	case err != nil:
		m.kit.fail(w, r, err)
		return
	}
	m.kit.log.Info("second factor enrolled", "login", u.Login)
	_ = m.kit.audit(r, index.AuditEvent{Action: "auth.mfa.enrolled", ObjectType: "user", ObjectID: u.Login, Details: map[string]any{"method": index.MethodTOTP}})
	writeJSON(w, http.StatusOK, map[string]any{"enrolled": true, "recovery_codes": codes})
}

// disable: DELETE /api/mfa/totp {password, code}, one's own second factor.
// A wrong password or code counts as a failed login.
func (m *secondFactor) disable(w http.ResponseWriter, r *http.Request) {
	u, ok := m.user(w, r)
	if !ok {
		return
	}
	var in struct {
		Password string `json:"password"`
		Code     string `json:"code"`
	}
	if !decode(w, r, &in) {
		return
	}
	switch {
	case in.Password == "" || len(in.Password) > index.MaxPasswordLen:
		writeJSON(w, http.StatusBadRequest, apiError{Error: "password: required", Field: "password"})
		return
	case in.Code == "" || len(in.Code) > index.MaxSecondFactorLen:
		writeJSON(w, http.StatusBadRequest, apiError{Error: "code: required (TOTP or a recovery code)", Field: "code"})
		return
	}
	err := m.db.DisableTOTP(r.Context(), u, in.Password, in.Code)
	switch {
	case errors.Is(err, index.ErrLocked):
		writeJSON(w, http.StatusTooManyRequests, apiError{Error: err.Error()})
	case errors.Is(err, index.ErrBadCredentials), errors.Is(err, index.ErrBadSecondFactor):
		_ = m.kit.audit(r, index.AuditEvent{Action: "auth.mfa.disable_failed", ObjectType: "user", ObjectID: u.Login})
		writeJSON(w, http.StatusForbidden, apiError{Error: "wrong password or code"})
	case errors.Is(err, index.ErrNoSecondFactor):
		writeJSON(w, http.StatusConflict, apiError{Error: err.Error()})
	case err != nil:
		m.kit.fail(w, r, err)
	default:
		m.kit.log.Info("second factor disabled", "login", u.Login)
		_ = m.kit.audit(r, index.AuditEvent{Action: "auth.mfa.disabled", ObjectType: "user", ObjectID: u.Login})
		writeJSON(w, http.StatusOK, map[string]any{"enrolled": false, "required": m.requiredFor(u.Role)})
	}
}

// reset: DELETE /api/users/{id}/mfa?reason= (admin), another user's
// second factor (a lost phone); ends their sessions. Audited with the
// reason.
func (m *secondFactor) reset(w http.ResponseWriter, r *http.Request) {
	id, ok := pathID(w, r, "id")
	if !ok {
		return
	}
	reason, ok := requiredReason(w, r, "to reset a second factor")
	if !ok {
		return
	}
	u, err := m.db.ResetSecondFactor(r.Context(), id)
	if errors.Is(err, index.ErrNoSecondFactor) {
		writeJSON(w, http.StatusConflict, apiError{Error: err.Error()})
		return
	}
	if err != nil {
		m.kit.fail(w, r, err)
		return
	}
	m.kit.log.Warn("second factor reset by an administrator", "login", u.Login, "by", actor(r))
	_ = m.kit.audit(r, index.AuditEvent{Action: "auth.mfa.reset", ObjectType: "user", ObjectID: u.Login, Details: map[string]any{"reason": reason}})
	writeJSON(w, http.StatusOK, map[string]any{"login": u.Login, "enrolled": false})
}
