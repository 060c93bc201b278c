"""Perception: what a photo tells the fit, in f2p's conventions (see f2p.conventions).

Modules (import them directly; this package imports nothing so that ``import f2p.perception.X`` stays light):
    image_io          load_image: any photo file -> (3, H, W) RGB [0, 1], or a one-line ImageReadError
    detection         FaceDetection, LandmarkDetector, detect_photo -> PhotoFaces | DetectionFailure
    dlib_detector     DlibDetector (HOG or CNN face detector + 68-point shape predictor)
    fan_detector      FanDetector (face_alignment), fan_weights_available, offline weight placement
    mediapipe         MediaPipeDetector: MediaPipe's BlazeFace, Face Mesh and iris models on LiteRT (478 dense points)
    combined          CombinedDetector: MediaPipe's faces and dense points with dlib's 68 points (what "auto" runs)
    detectors         create_detector("auto" | "fan" | "dlib" | "dlib-mmod" | "mediapipe")
    plausible         landmark sanity checks: implausible_landmarks says why a 68-point set is no face
    annotations       .pts / AFLW2000-3D .mat / plain arrays / shared face set -> Annotation (0-based pixels)
    landmark_metrics  NME (box-normalised), matching detections to annotated faces
    crop              canonical face crops (5-point template) with the photo <-> crop transforms
    masks             face-region masks from 68 landmarks, robust per-pixel weights
    photo             PhotoSample / PhotoLoader: a photo loaded, landmarked, aligned to a crop and masked for fitting
    prepare           prepare_photo: detect, landmark and embed one photo into a PreparedRecord
    prepared          the prepare cache: PreparedRecord, load_prepared
    align             similarity transforms and differentiable warps
    identity          face-recognition embeddings
"""
