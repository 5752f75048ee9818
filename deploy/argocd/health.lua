-- Argo CD health check for slm.dev/SmallLanguageModel.
-- Installed through argocd-cm (argocd-cm-health.yaml beside this file).
--   Progressing  being deleted (metadata.deletionTimestamp set), no status yet, an older
--                generation observed, or not Ready yet
--   Degraded     SpecValid=False, Fits=False, Degraded=True or phase Failed (with the message)
--   Suspended    scaled to zero: spec.replicas is 0 and autoscaling is off
--   Healthy      Ready=True and status.observedGeneration == metadata.generation
-- The operator reports the same conditions on every model (docs/operator.md), so nothing
-- here guesses from child objects.
local hs = {}

local function find_condition(conditions, kind)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == kind then
      return condition
    end
  end
  return nil
end

local function describe(condition, fallback)
  if condition ~= nil and condition.message ~= nil and condition.message ~= "" then
    return condition.message
  end
  if condition ~= nil and condition.reason ~= nil and condition.reason ~= "" then
    return condition.reason
  end
  return fallback
end

-- A model being deleted still shows its last status (Ready=True while the finalizer runs):
-- it is on its way out, not healthy.
if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted"
  return hs
end

local status = obj.status
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end

local generation = obj.metadata.generation
local observed = status.observedGeneration
if observed == nil or (generation ~= nil and observed < generation) then
  hs.status = "Progressing"
  if observed == nil then
    hs.message = "Waiting for the operator to observe the model"
  else
    hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
      .. " (observed " .. tostring(observed) .. ")"
  end
  return hs
end

local conditions = status.conditions
local spec_valid = find_condition(conditions, "SpecValid")
local fits = find_condition(conditions, "Fits")
local degraded = find_condition(conditions, "Degraded")
local ready = find_condition(conditions, "Ready")
local progressing = find_condition(conditions, "Progressing")

if spec_valid ~= nil and spec_valid.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(spec_valid, "The spec is invalid")
  return hs
end
if fits ~= nil and fits.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(fits, "The model does not fit the hardware tier")
  return hs
end
if degraded ~= nil and degraded.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(degraded, "The model is degraded")
  return hs
end
if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = describe(ready, "The model failed")
  return hs
end

-- Scaled to zero on purpose: nothing serves, and nothing should (Argo CD's Suspended, as for a
-- suspended CronJob or a paused rollout). Under autoscaling spec.replicas is ignored.
local spec = obj.spec or {}
local autoscaling = spec.autoscaling or {}
if spec.replicas == 0 and autoscaling.enabled ~= true then
  hs.status = "Suspended"
  hs.message = "Scaled to zero (spec.replicas: 0)"
  return hs
end

if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready, "The model is ready")
  if status.endpoint ~= nil then
    hs.message = hs.message .. " at " .. status.endpoint
  end
  return hs
end

hs.status = "Progressing"
if progressing ~= nil and progressing.status == "True" then
  hs.message = describe(progressing, "Deploying")
else
  hs.message = describe(ready, "Waiting for the model to become ready")
end
return hs
