# The Action's container. The runner builds it from this file; there is no USER and no WORKDIR on
# purpose (GitHub's docs: the workspace and file-command files must stay writable).
FROM python:3.11.7-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1

COPY . /action
# The same install step as .ci/run and `make test` (without the test peers).
RUN bash /action/.ci/install.sh runtime

ENTRYPOINT ["python", "/action/entrypoint.py"]
