"""DigitalOcean App Platform through the official `pydo` client (issue 8).

`descriptor` is what the registry reads; it imports no SDK. The factory reads the API token from
the env var named by `credentials.do_api_token_env_var`; `DIGITALOCEAN_API_URL` and
`DIGITALOCEAN_CA_BUNDLE` point it elsewhere (the tests' simulator, a corporate proxy's CA).
Modules: `adapter` (the platform), `api` (pydo behind retries), `spec` and `preview_spec` (app
specs), `image`, `watch` (waiting for a deployment), `deployments` (reading its outcome), `logs`,
`previews` (preview apps by name).
"""
