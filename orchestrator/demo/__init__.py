"""The walkthrough behind `deploy-orchestrator demo` and the small app it deploys."""
