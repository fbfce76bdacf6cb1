FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY smsapp ./smsapp
COPY contacts ./contacts
COPY texts ./texts
COPY campaigns ./campaigns
COPY providers ./providers
COPY hooks ./hooks
RUN pip install .
COPY . .
# collectstatic needs settings but no database or real secret.
RUN DEBUG=0 SECRET_KEY=build-only-not-secret SMSAPP_IGNORE_DOTENV=1 python manage.py collectstatic --noinput
RUN useradd --system --uid 1000 smsapp && mkdir -p /app/var && chown -R smsapp /app/var
USER smsapp
EXPOSE 8000
# The same server as docker-compose.yml's web service (bench/webhooks.py measures that one; a test keeps both equal).
CMD ["gunicorn", "smsapp.wsgi:application", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--workers", "2", "--threads", "4", "--access-logfile", "-"]
