"""The data behind the models: the dataset, synthetic records, training, the producer."""

from pathlib import Path

# The committed dataset, beside the package in a checkout (and in the images).
DATASET_PATH = Path(__file__).resolve().parents[2] / "data" / "enriched_employee_dataset.csv"
