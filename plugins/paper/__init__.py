"""The embedded market simulator that paper mode trades against."""
