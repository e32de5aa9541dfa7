"""Images: decoding (io.py); alignment and augmentation come with the face tasks."""
