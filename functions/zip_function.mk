# What `sam build` (BuildMethod makefile) does for each zip function: its handler, and the manifest of the
# model the container image ships (MODEL_DIR, the template's DockerBuildArgs default), so the function
# knows the embedder whose features it scores. SAM runs `make -f <this checkout's Makefile>` in a scratch
# folder with ARTIFACTS_DIR set; ROOT is this checkout.
ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/..)
MODEL_DIR ?= weights/models/vit-b-32/int8

# $(call zip_function,<folder under functions/>)
define zip_function
	@test -f $(ROOT)/$(MODEL_DIR)/manifest.json || \
		{ echo "no model at $(MODEL_DIR): run 'make model' first (or set MODEL_DIR)"; exit 1; }
	cp $(ROOT)/functions/$(1)/app.py $(ARTIFACTS_DIR)/app.py
	mkdir -p $(ARTIFACTS_DIR)/embedder
	cp $(ROOT)/$(MODEL_DIR)/manifest.json $(ARTIFACTS_DIR)/embedder/manifest.json
endef
