// Drives trainbox with agentscope-runtime-java's TrainingSandboxClient, unchanged (tests/test_java_client.py).
// argv: base URL (the client drops its last path segment, as it does with a sandbox container's URL), the
// episodes JSON [{"name", "task_id", "messages": [assistant message | null]}]. Prints one JSON object.
import com.fasterxml.jackson.core.type.TypeReference;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.agentscope.runtime.sandbox.manager.client.sandbox.TrainingSandboxClient;
import java.io.File;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

public class TrainboxJavaCheck {
    private static final ObjectMapper JSON = new ObjectMapper();

    public static void main(String[] args) throws Exception {
        List<Map<String, Object>> episodes = JSON.readValue(new File(args[1]), new TypeReference<>() {});
        TrainingSandboxClient client = new TrainingSandboxClient(args[0], 300);
        Map<String, Object> out = new HashMap<>();
        out.put("train", JSON.readValue(client.getEnvProfile("bfcl", "train", null), List.class).size());
        ExecutorService pool = Executors.newFixedThreadPool(16);
        List<Future<Map<String, Object>>> running = new ArrayList<>();
        for (Map<String, Object> episode : episodes) {
            running.add(pool.submit(() -> play(client, episode)));
        }
        List<Map<String, Object>> played = new ArrayList<>();
        for (Future<Map<String, Object>> result : running) {
            played.add(result.get());
        }
        pool.shutdown();
        out.put("episodes", played);
        out.put("release_unknown", client.releaseInstance("no-such-instance"));
        System.out.println(JSON.writeValueAsString(out));
    }

    @SuppressWarnings("unchecked")
    private static Map<String, Object> play(TrainingSandboxClient client, Map<String, Object> episode) throws Exception {
        Map<String, Object> record = new HashMap<>();
        record.put("name", episode.get("name"));
        Map<String, Object> made = JSON.readValue(
                client.createInstance("bfcl", (String) episode.get("task_id"), null, null), Map.class);
        String instanceId = (String) ((Map<String, Object>) made.get("info")).get("instance_id");
        record.put("create_state", made.get("state"));
        List<Object> steps = new ArrayList<>();
        for (Object message : (List<Object>) episode.get("messages")) {
            steps.add(JSON.readValue(client.step(instanceId, (Map<String, Object>) message, null), Map.class));
        }
        record.put("steps", steps);
        Map<String, Object> sparse = new HashMap<>();
        sparse.put("sparse", true);
        record.put("sparse", JSON.readValue(client.evaluate(instanceId, null, sparse), Object.class));
        record.put("released", client.releaseInstance(instanceId));
        return record;
    }
}
