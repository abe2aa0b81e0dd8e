# The Action's container. The runner builds it from this file; there is no USER and no WORKDIR on
# purpose (GitHub's docs: the workspace and file-command files must stay writable).
FROM python:3.11.7-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY . /action
# The same install recipe as `make test` and `make demo` (without the test peers). pip's cache lives in a
# build-cache mount: a code change does not download every dependency again, and no cache ships in the image.
RUN --mount=type=cache,target=/root/.cache/pip bash /action/.ci/install.sh runtime

ENTRYPOINT ["python", "/action/entrypoint.py"]
