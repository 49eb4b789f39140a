// Realistic Pod JSON for tests and benchmarks: the shape kube-apiserver 1.20 returns for a pod of a
// Deployment (owner reference, several labels and annotations, two containers with env, probes
// and resources, volumes, managedFields of two managers, a status with conditions), about 9 KB
// of compact JSON like the 8.9 KB pods in ../shared/notes/control-plane.md. Each pod differs in
// name, uid, resourceVersion, timestamps, IPs and the values of its `app`/`tier` labels.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace informer::testing {

struct pod_shape {
  std::string_view ns = "default";
  std::string app = "web";
  std::string tier = "frontend";
  std::string node;  // empty: unscheduled
  std::string phase = "Running";
};

inline std::string sample_pod_json(std::size_t i, const pod_shape& shape = {}) {
  char uid[40];
  std::snprintf(uid, sizeof uid, "%08zx-4c1f-4a5e-9b2d-%012zx", i * 2654435761u % 0xffffffffu, i);
  const std::string n = std::to_string(i);
  const std::string name = shape.app + "-7d9c8f6b5-" + n;
  const std::string rv = std::to_string(100000 + i);
  const std::string ip = "10.244." + std::to_string((i / 250) % 250) + "." + std::to_string(i % 250 + 2);
  const std::string ts = "2026-11-25T08:" + std::to_string(10 + i % 50) + ":" + std::to_string(10 + i % 49) + "Z";
  std::string node_field = shape.node.empty() ? "" : R"("nodeName":")" + shape.node + R"(",)";
  std::string s;
  s.reserve(10000);
  s += R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":")" + name + R"(","generateName":")" + shape.app +
       R"(-7d9c8f6b5-","namespace":")" + std::string(shape.ns) + R"(","uid":")" + uid + R"(","resourceVersion":")" +
       rv + R"(","creationTimestamp":")" + ts + R"(","labels":{"app":")" + shape.app +
       R"(","pod-template-hash":"7d9c8f6b5","tier":")" + shape.tier + R"(","version":"v1.4.2","track":"stable"},)";
  s +=
      R"("annotations":{"prometheus.io/scrape":"true","prometheus.io/port":"9090","kubectl.kubernetes.io/restartedAt":"2026-11-20T10:00:00Z"},)";
  s += R"("ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":")" + shape.app +
       R"(-7d9c8f6b5","uid":"6f1d2c3b-8e7a-4b5c-9d0e-1f2a3b4c5d6e","controller":true,"blockOwnerDeletion":true}],)";
  s +=
      R"("managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":")" + ts +
      R"(","fieldsType":"FieldsV1","fieldsV1":{"f:metadata":{"f:annotations":{".":{},"f:kubectl.kubernetes.io/restartedAt":{},"f:prometheus.io/port":{},"f:prometheus.io/scrape":{}},"f:generateName":{},"f:labels":{".":{},"f:app":{},"f:pod-template-hash":{},"f:tier":{},"f:track":{},"f:version":{}},"f:ownerReferences":{".":{},"k:{\"uid\":\"6f1d2c3b-8e7a-4b5c-9d0e-1f2a3b4c5d6e\"}":{".":{},"f:apiVersion":{},"f:blockOwnerDeletion":{},"f:controller":{},"f:kind":{},"f:name":{},"f:uid":{}}}},"f:spec":{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:env":{".":{},"k:{\"name\":\"LOG_LEVEL\"}":{".":{},"f:name":{},"f:value":{}},"k:{\"name\":\"POD_NAME\"}":{".":{},"f:name":{},"f:valueFrom":{".":{},"f:fieldRef":{".":{},"f:apiVersion":{},"f:fieldPath":{}}}}},"f:image":{},"f:imagePullPolicy":{},"f:livenessProbe":{".":{},"f:failureThreshold":{},"f:httpGet":{".":{},"f:path":{},"f:port":{},"f:scheme":{}},"f:periodSeconds":{},"f:successThreshold":{},"f:timeoutSeconds":{}},"f:name":{},"f:ports":{".":{},"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{},"f:name":{},"f:protocol":{}}},"f:resources":{".":{},"f:limits":{".":{},"f:cpu":{},"f:memory":{}},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{},"f:volumeMounts":{".":{},"k:{\"mountPath\":\"/etc/config\"}":{".":{},"f:mountPath":{},"f:name":{},"f:readOnly":{}}}},"k:{\"name\":\"sidecar\"}":{".":{},"f:image":{},"f:imagePullPolicy":{},"f:name":{},"f:resources":{".":{},"f:requests":{".":{},"f:cpu":{},"f:memory":{}}},"f:terminationMessagePath":{},"f:terminationMessagePolicy":{}}},"f:dnsPolicy":{},"f:enableServiceLinks":{},"f:restartPolicy":{},"f:schedulerName":{},"f:securityContext":{},"f:terminationGracePeriodSeconds":{},"f:volumes":{".":{},"k:{\"name\":\"config\"}":{".":{},"f:configMap":{".":{},"f:defaultMode":{},"f:name":{}},"f:name":{}}}}}},)";
  s +=
      R"({"manager":"kubelet","operation":"Update","apiVersion":"v1","time":")" + ts +
      R"(","fieldsType":"FieldsV1","fieldsV1":{"f:status":{"f:conditions":{"k:{\"type\":\"ContainersReady\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}},"k:{\"type\":\"Initialized\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}},"k:{\"type\":\"Ready\"}":{".":{},"f:lastProbeTime":{},"f:lastTransitionTime":{},"f:status":{},"f:type":{}}},"f:containerStatuses":{},"f:hostIP":{},"f:phase":{},"f:podIP":{},"f:podIPs":{".":{},"k:{\"ip\":\")" +
      ip + R"(\"}":{".":{},"f:ip":{}}},"f:startTime":{}}}}]},)";
  s +=
      R"("spec":{"volumes":[{"name":"config","configMap":{"name":")" + shape.app +
      R"(-config","defaultMode":420}},{"name":"default-token-x7k2p","secret":{"secretName":"default-token-x7k2p","defaultMode":420}}],)";
  s +=
      R"("containers":[{"name":"app","image":"registry.example.com/team/)" + shape.app +
      R"(:v1.4.2","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}],"env":[{"name":"LOG_LEVEL","value":"info"},{"name":"POD_NAME","valueFrom":{"fieldRef":{"apiVersion":"v1","fieldPath":"metadata.name"}}}],"resources":{"limits":{"cpu":"500m","memory":"256Mi"},"requests":{"cpu":"100m","memory":"128Mi"}},"volumeMounts":[{"name":"config","readOnly":true,"mountPath":"/etc/config"},{"name":"default-token-x7k2p","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],"livenessProbe":{"httpGet":{"path":"/healthz","port":8080,"scheme":"HTTP"},"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"},)";
  s +=
      R"({"name":"sidecar","image":"registry.example.com/infra/log-shipper:2.1.0","resources":{"requests":{"cpu":"10m","memory":"32Mi"}},"volumeMounts":[{"name":"default-token-x7k2p","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],)";
  s +=
      R"("restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"default","serviceAccount":"default",)" +
      node_field +
      R"("securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},)";
  s +=
      R"("status":{"phase":")" + shape.phase +
      R"(","conditions":[{"type":"Initialized","status":"True","lastProbeTime":null,"lastTransitionTime":")" + ts +
      R"("},{"type":"Ready","status":"True","lastProbeTime":null,"lastTransitionTime":")" + ts +
      R"("},{"type":"ContainersReady","status":"True","lastProbeTime":null,"lastTransitionTime":")" + ts +
      R"("},{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":")" + ts +
      R"("}],"hostIP":"192.168.1.)" + std::to_string(i % 200 + 10) + R"(","podIP":")" + ip + R"(","podIPs":[{"ip":")" +
      ip + R"("}],"startTime":")" + ts + R"(","containerStatuses":[{"name":"app","state":{"running":{"startedAt":")" +
      ts + R"("}},"lastState":{},"ready":true,"restartCount":0,"image":"registry.example.com/team/)" + shape.app +
      R"(:v1.4.2","imageID":"docker-pullable://registry.example.com/team/)" + shape.app +
      R"(@sha256:4f5e6d7c8b9a0f1e2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0","containerID":"docker://)" +
      std::string(uid) + std::string(uid).substr(0, 28) +
      R"(","started":true},{"name":"sidecar","state":{"running":{"startedAt":")" + ts +
      R"("}},"lastState":{},"ready":true,"restartCount":0,"image":"registry.example.com/infra/log-shipper:2.1.0","imageID":"docker-pullable://registry.example.com/infra/log-shipper@sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9","containerID":"docker://)" +
      std::string(uid).substr(0, 28) + std::string(uid) + R"(","started":true}],"qosClass":"Burstable"}})";
  return s;
}

}  // namespace informer::testing
