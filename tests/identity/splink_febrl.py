"""Splink (DuckDB backend) on the FEBRL data sets: the peer of `cairn bench identity`.

Usage: python splink_febrl.py dedupe FILE OUT.csv
       python splink_febrl.py link FILE_A FILE_B OUT.csv

Comparisons and blocking are equivalent to tests/identity/febrl-*.toml: Jaro-Winkler on both names,
the birth date (exact, one edit, within a month or a year), Damerau-Levenshtein on the social
security number, exact street number and postcode, Jaro-Winkler on the address; blocking on the
social security number, the birth date, the postcode, both names and the surname with the birth
year. u from random sampling, m by expectation maximisation (as Splink's own FEBRL examples), links
at match probability >= 0.9, clusters by connected components. Writes `source,source_id,unified_id`
rows (the source is the file name without extension) and prints one JSON object with the seconds Splink took (from registering the data to the
clusters; loading the CSV with pandas is not counted).
"""

import json
import logging
import pathlib
import sys
import time

import pandas as pd
import splink.comparison_library as cl
from splink import Linker, SettingsCreator, block_on
from splink.backends.duckdb import DuckDBAPI


def load(path):
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame = frame.replace({"": None})
    frame["address"] = (
        frame["street_number"].fillna("") + " " + frame["address_1"].fillna("")
    ).str.strip().replace({"": None})
    return frame


def settings(link_type):
    return SettingsCreator(
        link_type=link_type,
        unique_id_column_name="rec_id",
        comparisons=[
            cl.JaroWinklerAtThresholds("given_name", [0.9, 0.8]),
            cl.JaroWinklerAtThresholds("surname", [0.9, 0.8]),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format="%Y%m%d"
            ),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [1, 2]),
            cl.ExactMatch("street_number"),
            cl.ExactMatch("postcode"),
            cl.JaroWinklerAtThresholds("address", [0.9, 0.8]),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("soc_sec_id"),
            block_on("date_of_birth"),
            block_on("postcode"),
            block_on("given_name", "surname"),
            block_on("surname", "substr(date_of_birth, 1, 4)"),
        ],
        retain_intermediate_calculation_columns=False,
    )


def run(mode, paths, out):
    frames = [load(path) for path in paths]
    started = time.perf_counter()
    db_api = DuckDBAPI()
    tables = [
        db_api.register(frame, dataset_display_name=f"source_{index}")
        for index, frame in enumerate(frames)
    ]
    link_type = "dedupe_only" if mode == "dedupe" else "link_only"
    linker = Linker(tables if len(tables) > 1 else tables[0], settings(link_type), log_level=logging.WARNING)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("postcode"))
    predictions = linker.inference.predict(threshold_match_probability=0.9)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.9
    ).as_pandas_dataframe()
    seconds = time.perf_counter() - started
    if "source_dataset" not in clusters.columns:
        clusters["source_dataset"] = "source_0"
    names = {f"source_{index}": pathlib.Path(path).stem for index, path in enumerate(paths)}
    rows = pd.DataFrame(
        {
            "source": clusters["source_dataset"].map(lambda name: names.get(name, name)),
            "source_id": clusters["rec_id"],
            "unified_id": clusters["cluster_id"].astype(str),
        }
    )
    rows.to_csv(out, index=False)
    print(json.dumps({"seconds": seconds, "pairs": int(len(predictions.as_pandas_dataframe()))}))


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "dedupe":
        run(mode, [sys.argv[2]], sys.argv[3])
    elif mode == "link":
        run(mode, [sys.argv[2], sys.argv[3]], sys.argv[4])
    else:
        raise SystemExit("usage: splink_febrl.py dedupe FILE OUT | link FILE_A FILE_B OUT")
