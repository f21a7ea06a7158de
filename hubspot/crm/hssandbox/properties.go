package hssandbox

import (
	"fmt"
	"net/http"
	"slices"
)

type group struct {
	Name  string `json:"name"`
	Label string `json:"label"`
}

type option struct {
	Label string `json:"label"`
	Value string `json:"value"`
}

type property struct {
	Name      string   `json:"name"`
	Label     string   `json:"label"`
	Type      string   `json:"type"`
	FieldType string   `json:"fieldType"`
	GroupName string   `json:"groupName"`
	Options   []option `json:"options"`
}

// fieldTypes are the field types HubSpot allows for each property type.
var fieldTypes = map[string][]string{
	"string":      {"text", "textarea", "phonenumber", "html", "file"},
	"number":      {"number"},
	"enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
	"datetime":    {"date"},
	"date":        {"date"},
	"bool":        {"booleancheckbox"},
}

// builtins creates the default contact group and the few default properties
// a test might write besides hs2cc's own.
func (s *Server) builtins() {
	s.groups = []group{{Name: "contactinformation", Label: "Contact information"}}
	for _, name := range []string{"email", "firstname", "lastname"} {
		s.props[name] = property{Name: name, Label: name, Type: "string", FieldType: "text", GroupName: "contactinformation"}
	}
}

func (s *Server) listGroups(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	gs := slices.Clone(s.groups)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"results": gs})
}

func (s *Server) createGroup(w http.ResponseWriter, r *http.Request) {
	var g group
	if !decode(w, r, &g) {
		return
	}
	if g.Name == "" || g.Label == "" {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", "Property group name and label are required", nil)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groupLocked(g.Name) {
		writeError(w, http.StatusConflict, "OBJECT_ALREADY_EXISTS", fmt.Sprintf("A property group named '%s' already exists.", g.Name), nil)
		return
	}
	s.groups = append(s.groups, g)
	writeJSON(w, http.StatusCreated, g)
}

func (s *Server) groupLocked(name string) bool {
	return slices.ContainsFunc(s.groups, func(g group) bool { return g.Name == name })
}

func (s *Server) getProperty(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	p, ok := s.props[r.PathValue("name")]
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "OBJECT_NOT_FOUND", fmt.Sprintf("Unable to find property %s", r.PathValue("name")), nil)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) createProperty(w http.ResponseWriter, r *http.Request) {
	var p property
	if !decode(w, r, &p) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if msg := s.invalidPropertyLocked(p); msg != "" {
		writeError(w, http.StatusBadRequest, "VALIDATION_ERROR", msg, nil)
		return
	}
	if _, ok := s.props[p.Name]; ok {
		writeError(w, http.StatusConflict, "OBJECT_ALREADY_EXISTS", fmt.Sprintf("A property named '%s' already exists.", p.Name), nil)
		return
	}
	if p.Options == nil {
		p.Options = []option{}
	}
	s.props[p.Name] = p
	writeJSON(w, http.StatusCreated, p)
}

// invalidPropertyLocked says what is wrong with a property definition, or
// "" when nothing is.
func (s *Server) invalidPropertyLocked(p property) string {
	switch {
	case p.Name == "" || p.Label == "" || p.GroupName == "":
		return "Property name, label and groupName are required"
	case fieldTypes[p.Type] == nil:
		return fmt.Sprintf("Property type %q is not valid", p.Type)
	case !slices.Contains(fieldTypes[p.Type], p.FieldType):
		return fmt.Sprintf("Field type %q is not valid for property type %q", p.FieldType, p.Type)
	case !s.groupLocked(p.GroupName):
		return fmt.Sprintf("Property group %s does not exist", p.GroupName)
	case p.Type != "enumeration" && len(p.Options) > 0:
		return "Only enumeration properties have options"
	case p.Type == "enumeration" && len(p.Options) == 0:
		return "An enumeration property needs options"
	}
	seen := map[string]bool{}
	for _, o := range p.Options {
		if o.Value == "" || o.Label == "" || seen[o.Value] {
			return fmt.Sprintf("Option %q: label and a unique value are required", o.Value)
		}
		seen[o.Value] = true
	}
	return ""
}
