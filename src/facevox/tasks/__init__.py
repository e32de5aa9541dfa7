"""The tasks: each combines the building blocks into data + model + evaluation for one job."""
