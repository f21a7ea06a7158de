package routing

import "strings"

// usStates maps USPS two-letter codes of the states, the District of
// Columbia and the inhabited territories to their names. Constant Contact
// stores state as a name, and HubSpot forms often collect the code.
var usStates = map[string]string{
	"AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
	"CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia",
	"HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa",
	"KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland",
	"MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi", "MO": "Missouri",
	"MT": "Montana", "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire", "NJ": "New Jersey",
	"NM": "New Mexico", "NY": "New York", "NC": "North Carolina", "ND": "North Dakota", "OH": "Ohio",
	"OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania", "RI": "Rhode Island", "SC": "South Carolina",
	"SD": "South Dakota", "TN": "Tennessee", "TX": "Texas", "UT": "Utah", "VT": "Vermont",
	"VA": "Virginia", "WA": "Washington", "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming",
	"DC": "District of Columbia",
	"AS": "American Samoa", "GU": "Guam", "MP": "Northern Mariana Islands", "PR": "Puerto Rico",
	"VI": "U.S. Virgin Islands",
}

// caProvinces maps Canada Post's two-letter codes of the provinces and
// territories to their English names.
var caProvinces = map[string]string{
	"AB": "Alberta", "BC": "British Columbia", "MB": "Manitoba", "NB": "New Brunswick",
	"NL": "Newfoundland and Labrador", "NS": "Nova Scotia", "NT": "Northwest Territories",
	"NU": "Nunavut", "ON": "Ontario", "PE": "Prince Edward Island", "QC": "Quebec",
	"SK": "Saskatchewan", "YT": "Yukon",
}

// stateName converts a US or Canadian state code ("ca", "QC") to its name
// and a name in another case to the table's spelling. It applies only when
// the contact's country is the United States or Canada, because the same
// two letters name other regions elsewhere; anything it does not know is
// returned unchanged.
func stateName(state, country string) string {
	if state == "" {
		return ""
	}
	var table map[string]string
	switch country {
	case countries["US"]:
		table = usStates
	case countries["CA"]:
		table = caProvinces
	default:
		return state
	}
	if len(state) == 2 {
		if name, ok := table[upperASCII(state)]; ok {
			return name
		}
	}
	for _, name := range table {
		if strings.EqualFold(name, state) {
			return name
		}
	}
	return state
}
