// Every metric family name scenefarm-exporter serves, in one place (issue #12: the names were
// literals spread over the exporter's files). Collectors use these constants; kAllFamilies lists
// them all, and a test checks that docs/metrics.md lists exactly these and that a full scrape
// serves nothing else (prometheus-cpp's own exposer_* families aside).
// Names are an interface (alerts, dashboards and users build on them): extend, never rename.
#pragma once

#include <string_view>

namespace scenefarm::metric_names {

// queue collector
inline constexpr char kQueueDepth[] = "scenefarm_queue_depth";
inline constexpr char kQueueOldestPendingAge[] = "scenefarm_queue_oldest_pending_age_seconds";
inline constexpr char kQueueRunsInProgress[] = "scenefarm_queue_runs_in_progress";
inline constexpr char kQueueOldestLeasedAge[] = "scenefarm_queue_oldest_leased_age_seconds";
inline constexpr char kQueuePaused[] = "scenefarm_queue_paused";

// workers collector
inline constexpr char kWorkersLive[] = "scenefarm_workers_live";
inline constexpr char kWorkersBusy[] = "scenefarm_workers_busy";
inline constexpr char kWorkersIdle[] = "scenefarm_workers_idle";
inline constexpr char kWorkerBusy[] = "scenefarm_worker_busy";
inline constexpr char kWorkerHeartbeatAge[] = "scenefarm_worker_heartbeat_age_seconds";

// scenes collector
inline constexpr char kScenesTotal[] = "scenefarm_scenes_total";
inline constexpr char kScenesEnqueued[] = "scenefarm_scenes_enqueued_total";
inline constexpr char kRunsCompleted[] = "scenefarm_runs_completed_total";
inline constexpr char kSceneCompletions[] = "scenefarm_scene_completions_total";
inline constexpr char kSceneHistoryExits[] = "scenefarm_scene_history_exits_total";
inline constexpr char kSceneFramesShort[] = "scenefarm_scene_frames_short_total";
inline constexpr char kSceneFramesCollected[] = "scenefarm_scene_frames_collected_total";
inline constexpr char kSceneFallbacks[] = "scenefarm_scene_fallbacks_total";
inline constexpr char kSceneDuration[] = "scenefarm_scene_duration_seconds";
inline constexpr char kSceneEndToEnd[] = "scenefarm_scene_end_to_end_seconds";
inline constexpr char kSceneQueueWait[] = "scenefarm_scene_queue_wait_seconds";
inline constexpr char kSceneDoneMarkerWait[] = "scenefarm_scene_done_marker_wait_seconds";
inline constexpr char kSceneFrames[] = "scenefarm_scene_frames";
inline constexpr char kTelemetryContractViolations[] =
    "scenefarm_telemetry_contract_violations_total";

// redis collector
inline constexpr char kRedisUp[] = "scenefarm_redis_up";
inline constexpr char kRedisCommandDuration[] = "scenefarm_redis_command_duration_seconds";

// gpu collector (the exporter's own host) and worker_readings collector (every worker's
// ComfyUI): the same families, told apart by the instance and worker labels.
inline constexpr char kGpuInfo[] = "scenefarm_gpu_info";
inline constexpr char kGpuMemoryTotal[] = "scenefarm_gpu_memory_total_bytes";
inline constexpr char kGpuMemoryFree[] = "scenefarm_gpu_memory_free_bytes";
inline constexpr char kGpuMemoryUsed[] = "scenefarm_gpu_memory_used_bytes";
inline constexpr char kGpuTemperature[] = "scenefarm_gpu_temperature_celsius";
inline constexpr char kGpuUtilization[] = "scenefarm_gpu_utilization_ratio";
inline constexpr char kGpuPower[] = "scenefarm_gpu_power_watts";

// worker_readings collector: disk of each live worker's directories, and the readings' age.
inline constexpr char kWorkerDiskFree[] = "scenefarm_worker_disk_free_bytes";
inline constexpr char kWorkerDiskFreeRatio[] = "scenefarm_worker_disk_free_ratio";
inline constexpr char kWorkerDiskTotal[] = "scenefarm_worker_disk_total_bytes";
inline constexpr char kWorkerReadingsAge[] = "scenefarm_worker_readings_age_seconds";

// comfyui collector
inline constexpr char kComfyUiUp[] = "scenefarm_comfyui_up";
inline constexpr char kComfyUiProbeDuration[] = "scenefarm_comfyui_probe_duration_seconds";
inline constexpr char kComfyUiQueue[] = "scenefarm_comfyui_queue";
inline constexpr char kComfyUiDeviceMemoryFree[] = "scenefarm_comfyui_device_memory_free_bytes";
inline constexpr char kComfyUiDeviceMemoryTotal[] = "scenefarm_comfyui_device_memory_total_bytes";

// llm collector: the GET /v1/models probe at each scrape, and the optional generation probe
// (a one-token chat completion on its own interval and timeout).
inline constexpr char kLlmUp[] = "scenefarm_llm_up";
inline constexpr char kLlmProbeDuration[] = "scenefarm_llm_probe_duration_seconds";
inline constexpr char kLlmProbeErrors[] = "scenefarm_llm_probe_errors_total";
inline constexpr char kLlmModels[] = "scenefarm_llm_models";
inline constexpr char kLlmModelInfo[] = "scenefarm_llm_model_info";
inline constexpr char kLlmGenerationUp[] = "scenefarm_llm_generation_up";
inline constexpr char kLlmGenerationDuration[] = "scenefarm_llm_generation_duration_seconds";
inline constexpr char kLlmGenerationErrors[] = "scenefarm_llm_generation_errors_total";

// every collector, every scrape (collector_set.cpp)
inline constexpr char kCollectorSuccess[] = "scenefarm_exporter_collector_success";
inline constexpr char kCollectorDuration[] = "scenefarm_exporter_collector_duration_seconds";

inline constexpr std::string_view kAllFamilies[] = {
    kQueueDepth,
    kQueueOldestPendingAge,
    kQueueRunsInProgress,
    kQueueOldestLeasedAge,
    kQueuePaused,
    kWorkersLive,
    kWorkersBusy,
    kWorkersIdle,
    kWorkerBusy,
    kWorkerHeartbeatAge,
    kScenesTotal,
    kScenesEnqueued,
    kRunsCompleted,
    kSceneCompletions,
    kSceneHistoryExits,
    kSceneFramesShort,
    kSceneFramesCollected,
    kSceneFallbacks,
    kSceneDuration,
    kSceneEndToEnd,
    kSceneQueueWait,
    kSceneDoneMarkerWait,
    kSceneFrames,
    kTelemetryContractViolations,
    kRedisUp,
    kRedisCommandDuration,
    kGpuInfo,
    kGpuMemoryTotal,
    kGpuMemoryFree,
    kGpuMemoryUsed,
    kGpuTemperature,
    kGpuUtilization,
    kGpuPower,
    kWorkerDiskFree,
    kWorkerDiskFreeRatio,
    kWorkerDiskTotal,
    kWorkerReadingsAge,
    kComfyUiUp,
    kComfyUiProbeDuration,
    kComfyUiQueue,
    kComfyUiDeviceMemoryFree,
    kComfyUiDeviceMemoryTotal,
    kLlmUp,
    kLlmProbeDuration,
    kLlmProbeErrors,
    kLlmModels,
    kLlmModelInfo,
    kLlmGenerationUp,
    kLlmGenerationDuration,
    kLlmGenerationErrors,
    kCollectorSuccess,
    kCollectorDuration,
};

}  // namespace scenefarm::metric_names
