"""The composition root: the app and its blueprints, nothing else."""

import azure.functions as func

from functions import (
    ai_apps,
    ai_gateway,
    ai_questions,
    alerts,
    audit,
    events,
    health,
    ingest,
    landing,
    models,
    openapi,
    pipelines,
    serving,
)
from functions import lifecycle as model_lifecycle
from functions import monitoring as model_monitoring
from functions.access import PlatformApp
from orchestrations import (
    lifecycle,
    lifecycle_activities,
    medallion,
    medallion_activities,
    model_scoring,
    model_training_remote,
)
from orchestrations import models as model_training
from orchestrations import monitoring as monitoring_timer
from shared.bootstrap import current_platform

current_platform()  # fail at start-up, naming the setting, if the settings are wrong

# Like df.DFApp, and it refuses to load when an HTTP route declares no permission.
app = PlatformApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(health.bp)
app.register_functions(openapi.bp)
app.register_functions(events.bp)
app.register_functions(ingest.bp)
app.register_functions(landing.bp)
app.register_functions(pipelines.bp)
app.register_functions(audit.bp)
app.register_functions(models.bp)
app.register_functions(model_lifecycle.bp)
app.register_functions(model_monitoring.bp)
app.register_functions(alerts.bp)
app.register_functions(serving.bp)
app.register_functions(ai_gateway.bp)
app.register_functions(ai_apps.bp)
app.register_functions(ai_questions.bp)
app.register_functions(medallion.bp)
app.register_functions(medallion_activities.bp)
app.register_functions(model_training.bp)
app.register_functions(model_scoring.bp)
app.register_functions(model_training_remote.bp)
app.register_functions(lifecycle.bp)
app.register_functions(lifecycle_activities.bp)
app.register_functions(monitoring_timer.bp)
