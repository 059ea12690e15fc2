"""The composition root: the app and its blueprints, nothing else."""

import azure.durable_functions as df
import azure.functions as func

from functions import health
from shared.bootstrap import platform

platform()  # fail at start-up, naming the setting, if the settings are wrong

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health.bp)
