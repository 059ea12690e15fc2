"""The composition root: the app and its blueprints, nothing else."""

import azure.durable_functions as df
import azure.functions as func

from functions import events, health, ingest, landing, openapi, pipelines
from orchestrations import medallion, medallion_activities
from shared.bootstrap import current_platform

current_platform()  # fail at start-up, naming the setting, if the settings are wrong

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health.bp)
app.register_functions(openapi.bp)
app.register_functions(events.bp)
app.register_functions(ingest.bp)
app.register_functions(landing.bp)
app.register_functions(pipelines.bp)
app.register_functions(medallion.bp)
app.register_functions(medallion_activities.bp)
