"""The model behind process boundaries: JSONL commands (`latentwire encode / answer / inspect`) and the HTTP
server (`latentwire serve`: app.py routes, worker.py runs the model off the event loop)."""
