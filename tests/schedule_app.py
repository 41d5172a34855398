"""An app with schedules, for the scheduler's tests (``WARREN_APP=tests.schedule_app``)."""

import warren

every5 = warren.Schedule("every5", "diag.echo", {"message": "tick"}, every=5)
nightly = warren.Schedule(
    "nightly", "diag.echo", {"message": "night"}, cron="30 2 * * *", timezone="Europe/Paris"
)
app = warren.App(schedules=[every5, nightly])

# One schedule whose tasks belong to the API key "reader" (tests.test_auth's keys), one to itself.
owned = warren.Schedule("owned", "diag.echo", {"message": "mine"}, every=3600, submitter="reader")
unowned = warren.Schedule("unowned", "diag.echo", {"message": "theirs"}, every=3600)
owned_app = warren.App(schedules=[owned, unowned])
