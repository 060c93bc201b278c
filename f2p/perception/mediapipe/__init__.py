"""MediaPipe's face pipeline (BlazeFace, Face Mesh, iris) on Google's LiteRT runtime, as an f2p landmark detector.

A re-implementation of the CPU graphs of google-ai-edge/mediapipe (mediapipe/modules/face_detection,
face_landmark, iris_landmark and mediapipe/graphs/iris_tracking) around the original ``.tflite`` models, with
their constants cited where they are defined. Modules (import them directly):

    models     the model files: search in the model roots, pinned download from MediaPipe's model store
    runtime    LiteRtModel: one .tflite interpreter, loaded once, invoked with numpy arrays
    anchors    SSD anchor centres of the two BlazeFace models
    nms        weighted non-maximum suppression
    roi        square rotated regions of interest and how MediaPipe builds them
    crop       bilinear ROI crops into model inputs
    blazeface  BlazeFace face detector: boxes and 6 keypoints
    mesh       Face Mesh: 468 landmarks and a face-presence score on a ROI
    iris       iris model: eye-region refinement and 2 x 5 iris points
    detector   MediaPipeDetector, the ``LandmarkDetector`` (name "mediapipe")
"""
