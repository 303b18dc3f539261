package backend

import (
	"net/http"
	"strings"

	"github.com/omnigate/omnigate/internal/apierror"
)

// Alibaba Model Studio (DashScope) names its errors with string codes, in
// both its native API ("InvalidParameter", "Throttling.RateQuota") and its
// OpenAI-compatible mode ("invalid_parameter_error", "data_inspection_failed").
// The HTTP status it sends is not always the one the code implies (Arrearage
// comes as 400), so the code decides.

type msRule struct {
	status int
	typ    string
	code   string // replaces the upstream code when set
}

// modelStudioCodes is keyed by the squashed code (see squash); codes with a
// dotted suffix ("Throttling.RateQuota") are looked up by the part before the
// dot.
var modelStudioCodes = map[string]msRule{
	"invalidparameter":        {http.StatusBadRequest, apierror.TypeInvalidRequest, ""},
	"invalidparametererror":   {http.StatusBadRequest, apierror.TypeInvalidRequest, ""},
	"datainspectionfailed":    {http.StatusBadRequest, apierror.TypeInvalidRequest, CodeContentFilter},
	"invalidapikey":           {http.StatusUnauthorized, apierror.TypeAuthentication, ""},
	"accessdenied":            {http.StatusForbidden, apierror.TypeAuthentication, ""},
	"arrearage":               {http.StatusTooManyRequests, apierror.TypeRateLimit, ""},
	"insufficientquota":       {http.StatusTooManyRequests, apierror.TypeRateLimit, ""},
	"throttling":              {http.StatusTooManyRequests, apierror.TypeRateLimit, ""},
	"limitrequests":           {http.StatusTooManyRequests, apierror.TypeRateLimit, ""},
	"modelnotfound":           {http.StatusNotFound, apierror.TypeNotFound, ""},
	"internalerror":           {http.StatusInternalServerError, apierror.TypeServer, ""},
	"systemerror":             {http.StatusInternalServerError, apierror.TypeServer, ""},
	"serviceunavailable":      {http.StatusServiceUnavailable, apierror.TypeUnavailable, ""},
	"modelserviceunavailable": {http.StatusServiceUnavailable, apierror.TypeUnavailable, ""},
	"requesttimeout":          {http.StatusGatewayTimeout, apierror.TypeTimeout, ""},
}

// applyModelStudio sets e's status, type and code from a Model Studio code.
func applyModelStudio(e *apierror.Error, code string) {
	key := squash(code)
	if i := strings.IndexByte(key, '.'); i >= 0 {
		key = key[:i]
	}
	r, ok := modelStudioCodes[key]
	if !ok {
		return
	}
	e.Status, e.Type = r.status, r.typ
	if r.code != "" {
		e.Code = r.code
	}
}
