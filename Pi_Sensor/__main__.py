"""`python -m Pi_Sensor` runs the ingest server."""
from Pi_Sensor.server import main

main()
