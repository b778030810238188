package schema

import (
	"strings"
	"testing"
)

func TestColumnName(t *testing.T) {
	tests := []struct{ in, want string }{
		{"MoSms", "mo_sms"},
		{"MtSMS", "mt_sms"},
		{"AccountSessionTime", "account_session_time"},
		{"domesticUsage", "domestic_usage"},
		{"Account3Gpp2BeginSession", "account3_gpp2_begin_session"},
		{"NasIPAddress", "nas_ip_address"},
		{`x"; DROP TABLE usage_daily; --`, "x_drop_table_usage_daily"},
		{"", ""},
		{"___", ""},
		{"x\x00", "x"},
		{"\x00\xff'\n", ""},
		{"温度", ""},
		{"a\xffB", "a_b"},
		{"9lives", "attr_9lives"},
		{"Ünïcode-Key", "n_code_key"},
		{strings.Repeat("a", 100), strings.Repeat("a", 63)},
	}
	for _, tt := range tests {
		if got := ColumnName(tt.in); got != tt.want {
			t.Errorf("ColumnName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzColumnName(f *testing.F) {
	for _, s := range []string{"MoSms", `x"; DROP TABLE t; --`, "", "a\x00b", "Ⅻ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		name := ColumnName(key)
		alnum := strings.IndexFunc(key, func(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' }) >= 0
		if name == "" {
			if alnum {
				t.Fatalf("ColumnName(%q) is empty although the key has a letter or digit", key)
			}
			return
		}
		if !ValidColumnName(name) {
			t.Fatalf("ColumnName(%q) = %q: not a valid column name", key, name)
		}
	})
}

func TestTablesWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, tb := range Tables() {
		if seen[tb.Name] {
			t.Errorf("table %s declared twice", tb.Name)
		}
		seen[tb.Name] = true
		if tb.Comment == "" {
			t.Errorf("table %s has no comment", tb.Name)
		}
		if tb.View == "" && len(tb.Key()) == 0 {
			t.Errorf("table %s has no key", tb.Name)
		}
		cols := map[string]bool{}
		for _, c := range tb.Columns {
			if cols[c.Name] {
				t.Errorf("%s.%s declared twice", tb.Name, c.Name)
			}
			cols[c.Name] = true
			if c.Comment == "" {
				t.Errorf("%s.%s has no comment", tb.Name, c.Name)
			}
			if c.Type == "" {
				t.Errorf("%s.%s has no type", tb.Name, c.Name)
			}
		}
		attrs := map[string]string{}
		for _, c := range tb.Columns {
			for _, a := range append([]string{c.Attr}, c.Aliases...) {
				if a == "" {
					continue
				}
				if prev, ok := attrs[AttrKey(a)]; ok {
					t.Errorf("%s: attribute %s maps to %s and %s", tb.Name, a, prev, c.Name)
				}
				attrs[AttrKey(a)] = c.Name
			}
		}
		for _, c := range tb.Columns {
			if c.FirstOf != "" {
				src, ok := tb.Column(c.FirstOf)
				if !ok || src.Loader || src.Type != c.Type || !c.Loader {
					t.Errorf("%s.%s keeps the first %s: want a column transform fills, of its type, and %s filled by the loader", tb.Name, c.Name, c.FirstOf, c.Name)
				}
			}
			if c.Bookkeeping && (c.Key || c.Loader) {
				t.Errorf("%s.%s: a bookkeeping column is neither key nor filled by the loader", tb.Name, c.Name)
			}
		}
		for _, o := range tb.Order {
			if !cols[o] {
				t.Errorf("%s: order column %s does not exist", tb.Name, o)
			}
		}
	}
}

// Every attribute key on the vendor's usage and connection pages must map to a
// typed column.
func TestVendorKeysKnown(t *testing.T) {
	usage := []string{"MoSms", "MtSms", "MtSMS", "domesticUsage", "internationalUsage"}
	conn := []string{"BytesUsed", "Event", "Msisdn", "Username", "Account3Gpp2BeginSession",
		"Account3Gpp2CorrelationId", "Account3Gpp2OriginatingNumberSdbs", "Account3Gpp2ReleaseIndicator",
		"Account3Gpp2TerminatingNumberSdbs", "InputBytes", "OutputBytes", "AccountSessionId",
		"AccountSessionTime", "AccountTerminateCause", "CallingStationId", "AccountCallingStationId",
		"FramedIpAddress", "Account3Gpp2ActiveTime", "Account3Gpp2BadPppFrameCount",
		"Account3Gpp2FchFrameSize", "Account3Gpp2ForwardFchMuxOption", "Account3Gpp2ForwardFchRc",
		"Account3Gpp2ForwardTrafficType", "Account3Gpp2InboundMobileIpSigBytes", "Account3Gpp2IpTechnology",
		"Account3Gpp2OriginatingSdbByteCount", "Account3Gpp2OutboundMobileIpSigBytes",
		"Account3Gpp2ReverseFchMuxOption", "Account3Gpp2ReverseFchRc", "Account3Gpp2ReverseTrafficType",
		"Account3Gpp2ServiceOption", "Account3Gpp2SessionContinue", "Account3Gpp2TerminatingSdbByteCount",
		"AccountInputPackets", "AccountOutputPackets", "AccountStatusType", "NasIpAddress", "NasPort",
		"NasIdentifier", "Account3Gpp2CompulsoryTunnelIndicator", "Account3Gpp2HomeAgentIpAddress"}
	for _, c := range []struct {
		table string
		keys  []string
	}{{UsageDaily, usage}, {ConnectionEvents, conn}} {
		m := MustLookup(c.table).AttrColumns()
		for _, k := range c.keys {
			if _, ok := m[AttrKey(k)]; !ok {
				t.Errorf("%s: attribute %s has no column", c.table, k)
			}
		}
	}
}

func TestCreateSQLQuotesNames(t *testing.T) {
	tb := Table{Name: `we"ird`, Columns: []Column{{Name: `a"b`, Type: Varchar}}}
	got := tb.CreateSQL()
	want := "CREATE TABLE IF NOT EXISTS \"we\"\"ird\" (\n  \"a\"\"b\" VARCHAR\n)"
	if got != want {
		t.Errorf("CreateSQL = %q, want %q", got, want)
	}
}
