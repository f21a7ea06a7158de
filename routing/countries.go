package routing

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// countries maps every officially assigned ISO 3166-1 alpha-2 code to the
// English name sent to Constant Contact, which stores country as a name
// ("United States"), not a code.
//
// Source: the ISO 3166 Maintenance Agency's list of officially assigned
// alpha-2 codes (249 codes, unchanged since South Sudan was added in 2011),
// with the ISO English short names. The ISO suffixes "(the)" and
// qualifiers such as ", Republic of" are dropped, and where the ISO short
// name is a formal name that people rarely type the common English name is
// used instead; those entries carry the ISO name in a comment so that the
// choice is visible. Every formal ISO name that was replaced is also an
// alias in countryAliases, so it still converts.
var countries = map[string]string{
	"AD": "Andorra",
	"AE": "United Arab Emirates",
	"AF": "Afghanistan",
	"AG": "Antigua and Barbuda",
	"AI": "Anguilla",
	"AL": "Albania",
	"AM": "Armenia",
	"AO": "Angola",
	"AQ": "Antarctica",
	"AR": "Argentina",
	"AS": "American Samoa",
	"AT": "Austria",
	"AU": "Australia",
	"AW": "Aruba",
	"AX": "Åland Islands",
	"AZ": "Azerbaijan",
	"BA": "Bosnia and Herzegovina",
	"BB": "Barbados",
	"BD": "Bangladesh",
	"BE": "Belgium",
	"BF": "Burkina Faso",
	"BG": "Bulgaria",
	"BH": "Bahrain",
	"BI": "Burundi",
	"BJ": "Benin",
	"BL": "Saint Barthélemy",
	"BM": "Bermuda",
	"BN": "Brunei",  // ISO: Brunei Darussalam
	"BO": "Bolivia", // ISO: Bolivia (Plurinational State of)
	"BQ": "Bonaire, Sint Eustatius and Saba",
	"BR": "Brazil",
	"BS": "Bahamas",
	"BT": "Bhutan",
	"BV": "Bouvet Island",
	"BW": "Botswana",
	"BY": "Belarus",
	"BZ": "Belize",
	"CA": "Canada",
	"CC": "Cocos (Keeling) Islands",
	"CD": "Democratic Republic of the Congo", // ISO: Congo (the Democratic Republic of the)
	"CF": "Central African Republic",
	"CG": "Republic of the Congo", // ISO: Congo (the)
	"CH": "Switzerland",
	"CI": "Côte d'Ivoire",
	"CK": "Cook Islands",
	"CL": "Chile",
	"CM": "Cameroon",
	"CN": "China",
	"CO": "Colombia",
	"CR": "Costa Rica",
	"CU": "Cuba",
	"CV": "Cabo Verde",
	"CW": "Curaçao",
	"CX": "Christmas Island",
	"CY": "Cyprus",
	"CZ": "Czechia",
	"DE": "Germany",
	"DJ": "Djibouti",
	"DK": "Denmark",
	"DM": "Dominica",
	"DO": "Dominican Republic",
	"DZ": "Algeria",
	"EC": "Ecuador",
	"EE": "Estonia",
	"EG": "Egypt",
	"EH": "Western Sahara",
	"ER": "Eritrea",
	"ES": "Spain",
	"ET": "Ethiopia",
	"FI": "Finland",
	"FJ": "Fiji",
	"FK": "Falkland Islands", // ISO: Falkland Islands (the) [Malvinas]
	"FM": "Micronesia",       // ISO: Micronesia (Federated States of)
	"FO": "Faroe Islands",
	"FR": "France",
	"GA": "Gabon",
	"GB": "United Kingdom", // ISO: United Kingdom of Great Britain and Northern Ireland (the)
	"GD": "Grenada",
	"GE": "Georgia",
	"GF": "French Guiana",
	"GG": "Guernsey",
	"GH": "Ghana",
	"GI": "Gibraltar",
	"GL": "Greenland",
	"GM": "Gambia",
	"GN": "Guinea",
	"GP": "Guadeloupe",
	"GQ": "Equatorial Guinea",
	"GR": "Greece",
	"GS": "South Georgia and the South Sandwich Islands",
	"GT": "Guatemala",
	"GU": "Guam",
	"GW": "Guinea-Bissau",
	"GY": "Guyana",
	"HK": "Hong Kong",
	"HM": "Heard Island and McDonald Islands",
	"HN": "Honduras",
	"HR": "Croatia",
	"HT": "Haiti",
	"HU": "Hungary",
	"ID": "Indonesia",
	"IE": "Ireland",
	"IL": "Israel",
	"IM": "Isle of Man",
	"IN": "India",
	"IO": "British Indian Ocean Territory",
	"IQ": "Iraq",
	"IR": "Iran", // ISO: Iran (Islamic Republic of)
	"IS": "Iceland",
	"IT": "Italy",
	"JE": "Jersey",
	"JM": "Jamaica",
	"JO": "Jordan",
	"JP": "Japan",
	"KE": "Kenya",
	"KG": "Kyrgyzstan",
	"KH": "Cambodia",
	"KI": "Kiribati",
	"KM": "Comoros",
	"KN": "Saint Kitts and Nevis",
	"KP": "North Korea", // ISO: Korea (the Democratic People's Republic of)
	"KR": "South Korea", // ISO: Korea (the Republic of)
	"KW": "Kuwait",
	"KY": "Cayman Islands",
	"KZ": "Kazakhstan",
	"LA": "Laos", // ISO: Lao People's Democratic Republic (the)
	"LB": "Lebanon",
	"LC": "Saint Lucia",
	"LI": "Liechtenstein",
	"LK": "Sri Lanka",
	"LR": "Liberia",
	"LS": "Lesotho",
	"LT": "Lithuania",
	"LU": "Luxembourg",
	"LV": "Latvia",
	"LY": "Libya",
	"MA": "Morocco",
	"MC": "Monaco",
	"MD": "Moldova", // ISO: Moldova (the Republic of)
	"ME": "Montenegro",
	"MF": "Saint Martin", // ISO: Saint Martin (French part)
	"MG": "Madagascar",
	"MH": "Marshall Islands",
	"MK": "North Macedonia",
	"ML": "Mali",
	"MM": "Myanmar",
	"MN": "Mongolia",
	"MO": "Macao",
	"MP": "Northern Mariana Islands",
	"MQ": "Martinique",
	"MR": "Mauritania",
	"MS": "Montserrat",
	"MT": "Malta",
	"MU": "Mauritius",
	"MV": "Maldives",
	"MW": "Malawi",
	"MX": "Mexico",
	"MY": "Malaysia",
	"MZ": "Mozambique",
	"NA": "Namibia",
	"NC": "New Caledonia",
	"NE": "Niger",
	"NF": "Norfolk Island",
	"NG": "Nigeria",
	"NI": "Nicaragua",
	"NL": "Netherlands", // ISO: Netherlands (Kingdom of the)
	"NO": "Norway",
	"NP": "Nepal",
	"NR": "Nauru",
	"NU": "Niue",
	"NZ": "New Zealand",
	"OM": "Oman",
	"PA": "Panama",
	"PE": "Peru",
	"PF": "French Polynesia",
	"PG": "Papua New Guinea",
	"PH": "Philippines",
	"PK": "Pakistan",
	"PL": "Poland",
	"PM": "Saint Pierre and Miquelon",
	"PN": "Pitcairn",
	"PR": "Puerto Rico",
	"PS": "Palestine", // ISO: Palestine, State of
	"PT": "Portugal",
	"PW": "Palau",
	"PY": "Paraguay",
	"QA": "Qatar",
	"RE": "Réunion",
	"RO": "Romania",
	"RS": "Serbia",
	"RU": "Russia", // ISO: Russian Federation (the)
	"RW": "Rwanda",
	"SA": "Saudi Arabia",
	"SB": "Solomon Islands",
	"SC": "Seychelles",
	"SD": "Sudan",
	"SE": "Sweden",
	"SG": "Singapore",
	"SH": "Saint Helena, Ascension and Tristan da Cunha",
	"SI": "Slovenia",
	"SJ": "Svalbard and Jan Mayen",
	"SK": "Slovakia",
	"SL": "Sierra Leone",
	"SM": "San Marino",
	"SN": "Senegal",
	"SO": "Somalia",
	"SR": "Suriname",
	"SS": "South Sudan",
	"ST": "Sao Tome and Principe",
	"SV": "El Salvador",
	"SX": "Sint Maarten", // ISO: Sint Maarten (Dutch part)
	"SY": "Syria",        // ISO: Syrian Arab Republic (the)
	"SZ": "Eswatini",
	"TC": "Turks and Caicos Islands",
	"TD": "Chad",
	"TF": "French Southern Territories",
	"TG": "Togo",
	"TH": "Thailand",
	"TJ": "Tajikistan",
	"TK": "Tokelau",
	"TL": "Timor-Leste",
	"TM": "Turkmenistan",
	"TN": "Tunisia",
	"TO": "Tonga",
	"TR": "Turkey", // ISO: Türkiye (since 2022)
	"TT": "Trinidad and Tobago",
	"TV": "Tuvalu",
	"TW": "Taiwan",   // ISO: Taiwan (Province of China)
	"TZ": "Tanzania", // ISO: Tanzania, the United Republic of
	"UA": "Ukraine",
	"UG": "Uganda",
	"UM": "United States Minor Outlying Islands",
	"US": "United States", // ISO: United States of America (the)
	"UY": "Uruguay",
	"UZ": "Uzbekistan",
	"VA": "Vatican City", // ISO: Holy See (the)
	"VC": "Saint Vincent and the Grenadines",
	"VE": "Venezuela",              // ISO: Venezuela (Bolivarian Republic of)
	"VG": "British Virgin Islands", // ISO: Virgin Islands (British)
	"VI": "U.S. Virgin Islands",    // ISO: Virgin Islands (U.S.)
	"VN": "Vietnam",                // ISO: Viet Nam
	"VU": "Vanuatu",
	"WF": "Wallis and Futuna",
	"WS": "Samoa",
	"YE": "Yemen",
	"YT": "Mayotte",
	"ZA": "South Africa",
	"ZM": "Zambia",
	"ZW": "Zimbabwe",

	// XK is not assigned by ISO but is the code the EU, SWIFT and CLDR
	// use for Kosovo, so HubSpot data carries it.
	"XK": "Kosovo",
}

// countryAliases maps other spellings people and systems use to an alpha-2
// code: the formal ISO names replaced above, older names, abbreviations
// and a few native names of large markets. Matching ignores case, accents,
// dots, apostrophes, a leading "The" and "St"/"&" versus "Saint"/"and"
// (see countryKey), so those variants need no entry of their own.
var countryAliases = map[string]string{
	"USA":                      "US",
	"U.S.":                     "US",
	"U.S.A.":                   "US",
	"United States of America": "US",
	"UK":                       "GB",
	"Great Britain":            "GB",
	"Britain":                  "GB",
	"United Kingdom of Great Britain and Northern Ireland": "GB",
	"Deutschland":                            "DE",
	"Federal Republic of Germany":            "DE",
	"Holland":                                "NL",
	"Nederland":                              "NL",
	"Netherlands (Kingdom of the)":           "NL",
	"España":                                 "ES",
	"Brasil":                                 "BR",
	"Italia":                                 "IT",
	"Schweiz":                                "CH",
	"Suisse":                                 "CH",
	"Österreich":                             "AT",
	"Polska":                                 "PL",
	"Sverige":                                "SE",
	"Norge":                                  "NO",
	"Danmark":                                "DK",
	"Suomi":                                  "FI",
	"Éire":                                   "IE",
	"Republic of Ireland":                    "IE",
	"Belgique":                               "BE",
	"België":                                 "BE",
	"UAE":                                    "AE",
	"Brunei Darussalam":                      "BN",
	"Bolivia (Plurinational State of)":       "BO",
	"Plurinational State of Bolivia":         "BO",
	"Congo, The Democratic Republic of the":  "CD",
	"Congo (the Democratic Republic of the)": "CD",
	"DR Congo":                               "CD",
	"DRC":                                    "CD",
	"Congo-Kinshasa":                         "CD",
	"Congo":                                  "CG",
	"Congo-Brazzaville":                      "CG",
	"Ivory Coast":                            "CI",
	"Cape Verde":                             "CV",
	"Czech Republic":                         "CZ",
	"Bosnia-Herzegovina":                     "BA",
	"Falkland Islands (Malvinas)":            "FK",
	"Malvinas":                               "FK",
	"Micronesia (Federated States of)":       "FM",
	"Federated States of Micronesia":         "FM",
	"Hong Kong SAR":                          "HK",
	"Iran (Islamic Republic of)":             "IR",
	"Iran, Islamic Republic of":              "IR",
	"Islamic Republic of Iran":               "IR",
	"Korea (the Democratic People's Republic of)": "KP",
	"Korea, Democratic People's Republic of":      "KP",
	"Democratic People's Republic of Korea":       "KP",
	"DPRK":                                        "KP",
	"Korea (the Republic of)":                     "KR",
	"Korea, Republic of":                          "KR",
	"Republic of Korea":                           "KR",
	"Lao People's Democratic Republic":            "LA",
	"Lao PDR":                                     "LA",
	"Moldova (the Republic of)":                   "MD",
	"Moldova, Republic of":                        "MD",
	"Republic of Moldova":                         "MD",
	"Saint Martin (French part)":                  "MF",
	"Macedonia":                                   "MK",
	"Republic of North Macedonia":                 "MK",
	"Burma":                                       "MM",
	"Macau":                                       "MO",
	"Pitcairn Islands":                            "PN",
	"Palestine, State of":                         "PS",
	"State of Palestine":                          "PS",
	"Russian Federation":                          "RU",
	"Saint Helena":                                "SH",
	"Sint Maarten (Dutch part)":                   "SX",
	"Syrian Arab Republic":                        "SY",
	"Swaziland":                                   "SZ",
	"East Timor":                                  "TL",
	"Türkiye":                                     "TR",
	"Taiwan (Province of China)":                  "TW",
	"Taiwan, Province of China":                   "TW",
	"Tanzania, United Republic of":                "TZ",
	"United Republic of Tanzania":                 "TZ",
	"Holy See":                                    "VA",
	"Vatican":                                     "VA",
	"Venezuela (Bolivarian Republic of)":          "VE",
	"Bolivarian Republic of Venezuela":            "VE",
	"Virgin Islands (British)":                    "VG",
	"Virgin Islands, British":                     "VG",
	"Virgin Islands (U.S.)":                       "VI",
	"Virgin Islands, U.S.":                        "VI",
	"US Virgin Islands":                           "VI",
	"Viet Nam":                                    "VN",
}

// countryIndex maps the countryKey of every name and alias to its code. It
// is built once and only read afterwards.
var countryIndex = buildCountryIndex()

// buildCountryIndex panics on two spellings that fold to the same key but
// name different countries, so that a bad table edit fails every test
// instead of converting a country to the wrong one.
func buildCountryIndex() map[string]string {
	idx := make(map[string]string, len(countries)+len(countryAliases))
	add := func(name, code string) {
		k := countryKey(name)
		if prev, ok := idx[k]; ok && prev != code {
			panic("routing: country spelling " + name + " is ambiguous between " + prev + " and " + code)
		}
		idx[k] = code
	}
	for code, name := range countries {
		add(name, code)
	}
	for alias, code := range countryAliases {
		if _, ok := countries[code]; !ok {
			panic("routing: country alias " + alias + " names unknown code " + code)
		}
		add(alias, code)
	}
	return idx
}

// CountryName returns the English country name Constant Contact expects for
// s: an ISO 3166-1 alpha-2 code in any case ("us", "GB"), a known alias
// ("USA", "U.K.", "Deutschland") or a known name in another spelling
// ("united states", "Cote d'Ivoire") becomes the table's name ("United
// States", "United Kingdom", "Germany", "Côte d'Ivoire"). Anything else is
// returned trimmed but otherwise unchanged, because CC stores country as
// free text and a name the table lacks is still better sent than dropped.
func CountryName(s string) string {
	t := strings.TrimSpace(s)
	if code, ok := countryCode(t); ok {
		return countries[code]
	}
	return t
}

// countryCode finds the alpha-2 code that t names, if any.
func countryCode(t string) (string, bool) {
	if len(t) == 2 {
		if code := upperASCII(t); countries[code] != "" {
			return code, true
		}
	}
	k := countryKey(t)
	if len(k) == 2 {
		// "U.S." and "g.b." fold to a bare code.
		if code := upperASCII(k); countries[code] != "" {
			return code, true
		}
	}
	code, ok := countryIndex[k]
	return code, ok
}

// countryMatchKey is what route matching compares: the code of a known
// country, so that "US", "usa" and "United States" are equal, or else the
// folded text, so that unknown names still match ignoring case.
func countryMatchKey(s string) string {
	t := strings.TrimSpace(s)
	if t == "" {
		return ""
	}
	if code, ok := countryCode(t); ok {
		return "#" + code
	}
	return "~" + countryKey(t)
}

// countryKey folds a country spelling to a comparison key: lower case,
// Latin accents removed, dots and apostrophes dropped, any other
// punctuation a word break, "&" and "st" spelled out, and a leading "the"
// dropped. "St. Kitts & Nevis" and "Saint Kitts and Nevis" share a key.
func countryKey(s string) string {
	b := make([]byte, 0, len(s)+8)
	for _, r := range s {
		switch {
		case r == '.' || r == '\'' || r == '\u2019' || r == '\u2018' || r == '`':
			// "U.S." is "US" and "Cote d'Ivoire" is one word either way.
		case r == '&':
			b = append(b, " and "...)
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			b = utf8.AppendRune(b, foldLatin(unicode.ToLower(r)))
		default:
			b = append(b, ' ')
		}
	}
	words := strings.Fields(string(b))
	if len(words) > 1 && words[0] == "the" {
		words = words[1:]
	}
	for i, w := range words {
		if w == "st" {
			words[i] = "saint"
		}
	}
	return strings.Join(words, " ")
}

// foldLatin strips the accent from the lower-case Latin letters that occur
// in country names, so that "Curacao" finds "Curaçao" without pulling in
// a Unicode normalisation library for a few dozen letters.
func foldLatin(r rune) rune {
	switch r {
	case 'à', 'á', 'â', 'ã', 'ä', 'å', 'ā':
		return 'a'
	case 'ç', 'č':
		return 'c'
	case 'è', 'é', 'ê', 'ë', 'ē':
		return 'e'
	case 'ì', 'í', 'î', 'ï', 'ī':
		return 'i'
	case 'ñ':
		return 'n'
	case 'ò', 'ó', 'ô', 'õ', 'ö', 'ø', 'ō':
		return 'o'
	case 'ù', 'ú', 'û', 'ü', 'ū':
		return 'u'
	case 'ý', 'ÿ':
		return 'y'
	case 'š':
		return 's'
	case 'ž':
		return 'z'
	}
	return r
}

// upperASCII upper-cases ASCII letters only; codes are ASCII, and leaving
// other bytes alone keeps a non-ASCII input from matching a code.
func upperASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}
