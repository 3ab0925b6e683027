# ayna-fab - Ayna Deployment Standard v2.0
# The Makefile wraps Poe tasks (pyproject.toml [tool.poe.tasks]), as the standard's projects do.
#   make deploy TARGET=sandbox1          -H for fab; unset: hosts.toml's default_target
#   make logs TARGET=sandbox ARGS="--follow --service web"
#   make migrate TARGET=prod ARGS="-- crew 0003"

POE ?= .venv/bin/poe
TARGET ?=
ARGS ?=
export TARGET ARGS

GREEN := \033[0;32m
NC := \033[0m

.PHONY: run deploy rollback migrate shell logs start stop restart status validate test lint help

# Development
run:
	@$(POE) dev

# Deployment
deploy:
	@$(POE) deploy

rollback:
	@$(POE) rollback

# Database
migrate:
	@$(POE) migrate

# Shell access
shell:
	@$(POE) shell

# Service management
start:
	@$(POE) services:start

stop:
	@$(POE) services:stop

restart:
	@$(POE) services:restart

status:
	@$(POE) services:status

logs:
	@$(POE) logs

# Validation
validate:
	@$(POE) validate

# Testing
test:
	@$(POE) test

lint:
	@$(POE) lint

# Help
help:
	@echo "$(GREEN)ayna-fab - Ayna Deployment Standard v2.0$(NC)"
	@echo ""
	@echo "Development:"
	@echo "  make run        The demo on a sandbox host (as root)"
	@echo "  make test       Run the tests (end-to-end ones need root)"
	@echo "  make lint       Byte-compile the sources, load every task"
	@echo ""
	@echo "Deployment (TARGET=host|group, else hosts.toml's default_target):"
	@echo "  make deploy     Deploy the committed code, health-gated"
	@echo "  make rollback   Back to the previous good release"
	@echo ""
	@echo "Services:"
	@echo "  make start      Start all services"
	@echo "  make stop       Stop all services"
	@echo "  make restart    Restart all services"
	@echo "  make status     Releases, units and health of every host"
	@echo "  make logs       The services' journal (ARGS=--follow to stream)"
	@echo ""
	@echo "Database:"
	@echo "  make migrate    Back up, then run migrations"
	@echo "  make shell      Django shell in the live release"
	@echo ""
	@echo "Conformance:"
	@echo "  make validate   Check conformance with the standard"
