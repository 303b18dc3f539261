package plan

import (
	"strings"
	"testing"

	"github.com/omnigate/omnigate/internal/config"
)

// tiers counts a fleet plan's replicas by machine and tier.
func tiers(fp *FleetPlan) map[string]int {
	out := map[string]int{}
	for _, r := range fp.Replicas {
		out[r.Machine+"/"+r.Tier]++
	}
	return out
}

func TestPlanFleet(t *testing.T) {
	for _, tc := range []struct {
		name  string
		inv   Inventory
		want  map[string]int
		notes string // a note that must be there
		idle  string
	}{
		{
			// The rule's own case: the big machines take the large tier, the
			// small GPUs the small one.
			name: "h100 boards and l4s",
			inv: Inventory{Machines: []Machine{
				{Name: "hopper-1", GPU: "H100-80GB", Count: 4}, {Name: "hopper-2", GPU: "H100-80GB", Count: 4},
				{Name: "l4-1", GPU: "L4", Count: 1}, {Name: "l4-2", GPU: "L4", Count: 1},
			}},
			want: map[string]int{"hopper-1/large": 4, "hopper-2/large": 4, "l4-1/small": 1, "l4-2/small": 1},
		},
		{
			// Every machine fits the large tier: one replica's GPUs go to the
			// small tier, so both run.
			name:  "only h100 boards",
			inv:   Inventory{Machines: []Machine{{Name: "hopper-1", GPU: "H100-80GB", Count: 8}}},
			want:  map[string]int{"hopper-1/large": 7, "hopper-1/small": 1},
			notes: "gives 1 GPUs of it to qwen3-omni-7b",
		},
		{
			// Fewer, bigger large replicas when asked.
			name: "h100 boards at tp 4",
			inv: Inventory{LargeTP: 4, Machines: []Machine{
				{Name: "hopper-1", GPU: "H100-80GB", Count: 4}, {Name: "hopper-2", GPU: "H100-80GB", Count: 4}, {Name: "l4-1", GPU: "L4", Count: 1},
			}},
			want: map[string]int{"hopper-1/large": 1, "hopper-2/large": 1, "l4-1/small": 1},
		},
		{
			// Nothing fits the large tier: the fleet is all small, and a T4
			// (16 GB, no bf16, no fp8, no int4 kernel) fits neither.
			name:  "small cards only",
			inv:   Inventory{Machines: []Machine{{Name: "t4", GPU: "T4", Count: 1}, {Name: "l4", GPU: "L4", Count: 1}}},
			want:  map[string]int{"l4/small": 1},
			notes: "no machine fits qwen3-omni-30b",
			idle:  "t4: 1× T4 fits neither",
		},
		{
			// Two 24 GB cards hold the large tier in fp8 and nothing is left:
			// the config has only it.
			name:  "two rtx 4090s",
			inv:   Inventory{Machines: []Machine{{Name: "desk", GPU: "RTX-4090", Count: 2, Interconnect: "pcie"}}},
			want:  map[string]int{"desk/large": 1},
			notes: "no GPUs are left for qwen3-omni-7b",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fp, err := PlanFleet(tc.inv, Catalog{})
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			fp.WriteText(&text)
			t.Logf("\n%s", text.String())
			if tc.want != nil {
				got := tiers(fp)
				for k, v := range tc.want {
					if got[k] != v {
						t.Errorf("%s: %d replicas, want %d (all: %v)", k, got[k], v, got)
					}
				}
				if len(got) != len(tc.want) {
					t.Errorf("replicas %v, want %v", got, tc.want)
				}
			}
			if tc.notes != "" && !strings.Contains(strings.Join(fp.Notes, "\n"), tc.notes) {
				t.Errorf("notes %q, want one with %q", fp.Notes, tc.notes)
			}
			if tc.idle != "" && !strings.Contains(strings.Join(fp.Idle, "\n"), tc.idle) {
				t.Errorf("idle %q, want one with %q", fp.Idle, tc.idle)
			}
			// The config it writes is one the gateway serves.
			var b strings.Builder
			if err := fp.WriteConfig(&b, false); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Parse([]byte(b.String()), "fleet.yaml")
			if err != nil {
				t.Fatalf("%v\n%s", err, b.String())
			}
			cfg.ApplyDefaults()
			if ps := cfg.Validate(); len(ps) > 0 {
				t.Fatalf("the fleet's config does not validate: %v\n%s", ps, b.String())
			}
			deployments := 0
			for _, m := range cfg.Models {
				deployments += len(m.Deployments)
				for _, d := range m.Deployments {
					if d.Hardware.GPU == "" || d.Hardware.Count < 1 || d.Quantization == "" || d.MaxNumSeqs < 1 {
						t.Errorf("deployment %s lacks what the plan knows: %+v", d.Name, d)
					}
				}
			}
			if deployments != len(fp.Replicas) {
				t.Errorf("%d deployments for %d replicas", deployments, len(fp.Replicas))
			}
		})
	}
}

func TestPlanFleetErrors(t *testing.T) {
	for _, inv := range []Inventory{
		{},
		{Machines: []Machine{{Name: "a", GPU: "H100-80GB", Count: 0}}},
		{Machines: []Machine{{Name: "a", GPU: "Z9000", Count: 1}}},
		{Machines: []Machine{{Name: "a", GPU: "L4", Count: 1}, {Name: "a", GPU: "L4", Count: 1}}},
		{Machines: []Machine{{Name: "a", GPU: "L4", Count: 1}}, Engine: "transformers"},
	} {
		if _, err := PlanFleet(inv, Catalog{}); err == nil {
			t.Errorf("%+v: no error", inv)
		}
	}
}
