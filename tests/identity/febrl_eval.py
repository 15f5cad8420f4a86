"""Pairwise precision, recall and F1 of a resolution of FEBRL records.

Usage: python febrl_eval.py RESULT.csv [--link]

RESULT.csv has `source,source_id,unified_id` rows (the output of `cairn identity resolve` or of
splink_febrl.py). The truth is in the record ids: `rec-N-org` and `rec-N-dup-K` are person N. With
--link only pairs across sources count (FEBRL 4a/4b linkage). Prints one JSON object.
"""

import csv
import itertools
import json
import re
import sys
from collections import defaultdict

PERSON = re.compile(r"^rec-(\d+)-(?:org|dup-\d+)$")


def pairs_of(groups, link_only):
    pairs = set()
    for members in groups.values():
        for left, right in itertools.combinations(sorted(members), 2):
            if link_only and left[0] == right[0]:
                continue
            pairs.add((left, right))
    return pairs


def evaluate(path, link_only):
    predicted_groups = defaultdict(list)
    true_groups = defaultdict(list)
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            record = (row["source"], row["source_id"])
            predicted_groups[row["unified_id"]].append(record)
            match = PERSON.match(row["source_id"])
            if not match:
                raise SystemExit(f"unexpected record id {row['source_id']!r}")
            true_groups[match.group(1)].append(record)
    predicted = pairs_of(predicted_groups, link_only)
    truth = pairs_of(true_groups, link_only)
    true_positives = len(predicted & truth)
    precision = true_positives / len(predicted) if predicted else 0.0
    recall = true_positives / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "predicted_pairs": len(predicted),
        "true_pairs": len(truth),
        "true_positives": true_positives,
    }


if __name__ == "__main__":
    print(json.dumps(evaluate(sys.argv[1], "--link" in sys.argv[2:])))
