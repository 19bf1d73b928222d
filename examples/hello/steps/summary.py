# Summary statistics per treatment, with only the standard library.
import csv
import statistics

with open("/data/measurements.csv", newline="") as f:
    rows = list(csv.DictReader(f))

groups = {}
for row in rows:
    groups.setdefault(row["treatment"], []).append(row)

print(f"{len(rows)} plants in {len(groups)} groups")
summary = []
for treatment in sorted(groups):
    heights = [float(r["height_cm"]) for r in groups[treatment]]
    leaves = [int(r["leaf_count"]) for r in groups[treatment]]
    line = {
        "treatment": treatment,
        "n": len(heights),
        "height_mean": round(statistics.mean(heights), 2),
        "height_sd": round(statistics.stdev(heights), 2),
        "leaves_mean": round(statistics.mean(leaves), 2),
    }
    summary.append(line)
    print(f"{treatment:>10}: n={line['n']} height {line['height_mean']} "
          f"± {line['height_sd']} cm, {line['leaves_mean']} leaves")
